// The session module: the one place that knows the record format, the Redis key layout and
// how sessions are read and written. The auth service imports this and nothing else.
export * from './record.js';
export * from './store.js';
export * from './redis.js';
export * from './resolver.js';
export * from './cookie.js';
export * from './settings.js';
export {
  CLIENT_ASSERTION_CLAIM,
  CLIENT_ASSERTION_HEADER,
  CLIENT_ASSERTION_TTL_MS,
  CLIENT_ASSERTION_TYPE,
  isClientAssertionHeader,
} from './client-assertion.js';
export {
  API_KEY_PATTERN,
  API_KEY_PREFIX,
  MAX_API_KEYS_PER_USER,
  MAX_API_KEY_NAME_LENGTH,
  apiKeyNameProblem,
  isApiKeyId,
  parseApiKeyRecord,
  type ApiKeyRecord,
} from './api-keys.js';
export { ApiKeyLimitReached, ApiKeyStore, type ApiKeySummary, type NewApiKey } from './api-key-store.js';
export { allHold, rolesFromClaims, type Condition as ClaimCondition, type RoleRule as ClaimRoleRule } from './claim-rules.js';
