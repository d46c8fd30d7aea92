// The contract the gateway and the auth service share: what one writes, the other reads.
// Everything either of them may use is listed here by name; nothing else leaves the package.

/** The session record, the token and the Redis key layout. */
export {
  RECORD_VERSION,
  DEFAULT_KEY_PREFIX,
  KeyLayout,
  InvalidRecordError,
  isLegacyToken,
  isWellFormedToken,
  keyPrefixProblem,
  mintToken,
  parseRecord,
  recordStarts,
  remainingLifetimeMs,
  serializeRecord,
  sessionRef,
  shortUserAgent,
  MAX_USER_AGENT_LENGTH,
  userTag,
  type SessionRecord,
  type SessionRef,
} from './record.js';

/** Every Redis operation on sessions. */
export {
  DEFAULT_MAX_SESSIONS_PER_USER,
  SessionStore,
  type CommandObserver,
  type CreatedSession,
  type DataWriteOutcome,
  type DataWriteResult,
  type NewSession,
  type RedisClient,
  type SessionStoreOptions,
  type SessionSummary,
} from './store.js';

/** Session data: what services keep in a session, by namespace, and how a write is checked. */
export {
  DATA_KEY_PATTERN,
  DEFAULT_NAMESPACE_BYTES,
  MAX_DATA_STRING_LENGTH,
  MAX_NAMESPACE_BYTES,
  NAMESPACE_PATTERN,
  dataSummary,
  namespaceBytes,
  parseDataPatch,
  pickNamespaces,
  type DataPatch,
  type SessionData,
  type SessionDataNamespace,
  type SessionDataValue,
} from './session-data.js';

/** The Redis connection: its settings from the environment, the client, its key-tracking connections, its readiness. */
export {
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  createRedisClient,
  describeConnection,
  pingWithin,
  redisConnectionFromEnv,
  redisOptionsFromEnv,
  trackingConnectionFor,
  trackingConnectionToNode,
  waitUntilReady,
  type RedisConnection,
  type RedisConnectionOptions,
  type RedisOptionsFromEnv,
} from './redis.js';

/** The Fastify plugin that opens that connection, reports its outages and closes it. */
export { default as redisPlugin, Reachability, type RedisPluginOptions, type SessionRedis } from './redis-plugin.js';

/** The session cookie: reading it off a request, setting and clearing it. */
export {
  DEFAULT_COOKIE_NAME,
  clearSessionSetCookie,
  cookieNameAsSent,
  cookieNameProblem,
  readSessionCookie,
  sessionSetCookie,
  type CookieAttributes,
  type SessionCookie,
} from './cookie.js';

/** The session settings both services read from the same variables. */
export {
  DEFAULT_ABSOLUTE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  REDIS_ENVIRONMENT_HELP,
  sessionSettingsFromEnv,
  type SessionSettings,
} from './settings.js';

/** What an X-Session carries: its issuer and audience defaults, reserved claims and value limits. */
export {
  DEFAULT_AUTH_ROUTE,
  DEFAULT_X_SESSION_ISSUER,
  MAX_ROLES,
  MAX_VALUE_LENGTH,
  RESERVED_CLAIMS,
  SESSION_DATA_CLAIM,
  UNSAFE_CHARS,
} from './x-session.js';

/** The signed client address the gateway sends the auth service. */
export {
  CLIENT_ASSERTION_CLAIM,
  CLIENT_ASSERTION_HEADER,
  CLIENT_ASSERTION_TTL_MS,
  CLIENT_ASSERTION_TYPE,
  isClientAssertionHeader,
} from './client-assertion.js';

/** X_SESSION_KEYS: the one JWK-set loader of the gateway's signer and the auth service's verifier. */
export {
  KeyConfigError,
  MIN_HS256_SECRET_BYTES,
  generateKeySet,
  loadKeySet,
  parseKeySet,
  verificationKeyFor,
  verificationKeys,
  type Ed25519SigningKey,
  type HmacSigningKey,
  type KeySet,
  type KeySetUse,
  type SigningAlg,
  type SigningKey,
  type VerificationKey,
  type VerificationKeys,
} from './keys.js';

/** API keys: the key format, the record (only a hash of the key), its store in the owner's slot. */
export {
  API_KEY_PATTERN,
  API_KEY_PREFIX,
  ApiKeyLayout,
  MAX_API_KEYS_PER_USER,
  MAX_API_KEY_NAME_LENGTH,
  apiKeyDigest,
  apiKeyMatches,
  apiKeyNameProblem,
  apiKeyRef,
  isApiKeyId,
  parseApiKeyRecord,
  type ApiKeyRecord,
} from './api-keys.js';
export { ApiKeyLimitReached, ApiKeyStore, type ApiKeySummary, type NewApiKey } from './api-key-store.js';

/** Roles from an identity provider's claims: OIDC sign-in and bearer JWTs use the same rules. */
export { allHold, rolesFromClaims, type Condition as ClaimCondition, type RoleRule as ClaimRoleRule } from './claim-rules.js';
export {
  ClaimConditionSchema,
  ClaimConditionsSchema,
  ClaimRoleRuleSchema,
  MAX_CLAIM_ROLE_RULES,
  claimRulesFrom,
  type ClaimConditionInput,
  type ClaimRoleRuleInput,
} from './claim-rule-schema.js';
