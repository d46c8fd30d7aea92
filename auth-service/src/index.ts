// The auth service: login, logout, logout everywhere, my sessions, and the users directory.
export { buildAuthService, type AuthService, type BuildAuthServiceOptions } from './app.js';
export { startAuthServer } from './server.js';
export { authConfigFromEnv, DEFAULT_AUTH_METRICS_PORT, DEFAULT_AUTH_PORT, type AuthConfig } from './config.js';
export { XSessionVerifier, loadVerificationKeys, type Identity, type VerificationKeys } from './identity.js';
export { AuthMetrics } from './metrics.js';
export { LoginThrottle, clientThrottleId, type ThrottleSettings } from './throttle.js';
export type { User, UserChange, UserDirectory, Verification } from './users/directory.js';
export { FileUserDirectory } from './users/file-directory.js';
export { defaultParams, hashPassword, verifyPassword, parseHash } from './users/password.js';
export { parseUsersFile, type UsersFile, type UserEntry } from './users/users-file.js';
