import { runServiceCommand, type CliIo } from '@sessiongate/service-kit';
import { DEFAULT_MAX_SESSIONS_PER_USER, REDIS_ENVIRONMENT_HELP } from '@sessiongate/session';
import {
  authConfigFromEnv,
  DEFAULT_AUTH_METRICS_PORT,
  DEFAULT_AUTH_PORT,
  DEFAULT_USERS_FILE,
  MAX_SESSIONS_PER_USER_LIMIT,
} from './config.js';
import { startAuthServer } from './server.js';

export { usersCommand, USERS_HELP } from './users/command.js';
export { apiKeysCommand, API_KEYS_HELP } from './users/api-keys-command.js';
export type { CliIo } from '@sessiongate/service-kit';

export const AUTH_HELP = `Usage: sessiongate auth [options]

Runs the auth service: POST /auth/login, /auth/logout, /auth/logout-all, GET /auth/sessions,
DELETE /auth/sessions/:sid, GET /auth/me. It runs behind the gateway as the route named
"auth" (auth: optional) and learns who is calling from the gateway's signed X-Session.
Settings come from the environment; options override them.

Options:
  --users FILE         users file                       (SESSIONGATE_USERS, ${DEFAULT_USERS_FILE})
  --host ADDR          public listener address          (AUTH_HOST, 0.0.0.0)
  --port N             public listener port             (AUTH_PORT, ${DEFAULT_AUTH_PORT})
  --metrics-port N     metrics and health port          (AUTH_METRICS_PORT, ${DEFAULT_AUTH_METRICS_PORT})
  -h, --help           show this help

Environment:
${REDIS_ENVIRONMENT_HELP}
  SESSIONGATE_REDIS_PREFIX    sg:       prefix of every key (must match the gateway's)
  SESSIONGATE_USERS           ${DEFAULT_USERS_FILE}   the users file (see \`sessiongate users --help\`)
  SESSIONGATE_WATCH_USERS     true      reload the users file when it changes (SIGHUP always)
  SESSIONGATE_SCRYPT_COST     17        log2 of scrypt's N for new hashes (14-20); unknown
                                        user names are checked at the costs of the file's
                                        users, in their proportions
  SESSIONGATE_OIDC            (unset)   OpenID Connect providers (YAML; docs/oidc.md): "Sign
                                        in with …" buttons, back-channel logout, and
                                        password_login: false to keep providers only
  AUTH_HOST, AUTH_PORT        0.0.0.0, ${DEFAULT_AUTH_PORT}   the public listener
  AUTH_METRICS_HOST, AUTH_METRICS_PORT
                              $AUTH_HOST, ${DEFAULT_AUTH_METRICS_PORT}   /metrics, /healthz, /readyz (never
                                        on the public port)
  HOST, PORT, METRICS_HOST, METRICS_PORT
                                        used when the AUTH_ ones are unset; the gateway
                                        reads its own GATEWAY_ ones first, so both can
                                        share one environment file
  SESSION_COOKIE_NAME         sid       the session cookie (__Host-sid works with Secure)
  SESSION_IDLE_TIMEOUT        30m       a session unused this long ends
  SESSION_ABSOLUTE_TIMEOUT    12h       no session lives longer
  SESSION_MAX_PER_USER        ${DEFAULT_MAX_SESSIONS_PER_USER}        live sessions per user (1-${MAX_SESSIONS_PER_USER_LIMIT}); a login past it
                                        ends that user's oldest session
  COOKIE_SECURE               true      false only for local http
  X_SESSION_KEYS              required  the gateway's JWK set (JSON) or a path to one; only
                                        public parts are used (EdDSA), or the HS256 secret
  X_SESSION_ISSUER            sessiongate   expected "iss" of X-Session
  SESSIONGATE_AUTH_ROUTE      auth      the gateway's route name for this service: the
                                        expected "aud" of X-Session
  SESSIONGATE_TRUSTED_PROXIES 127.0.0.1/32,::1/128
                                        peers whose X-Forwarded-For is believed; the client
                                        IP is then the rightmost hop that is not one of them.
                                        The default fits a gateway on the same host; set the
                                        gateway's addresses otherwise ("" trusts nobody). A
                                        client address the gateway signed always wins
  SESSIONGATE_ALLOWED_ORIGINS (own origin)  origins besides the request's own that may post
                                        to login and logout (as set on the gateway)
  LOGIN_MAX_FAILURES_PER_ACCOUNT 5      failed logins per account and window, then 429
  LOGIN_MAX_FAILURES_PER_IP   100       failed logins per client IP (IPv6: per /64) and window
  LOGIN_FAILURE_WINDOW        15m       the throttling window
  LOGIN_DEFAULT_NEXT          /         where a browser lands after signing in when no
                                        page asked for it (a path on this site)
  SESSIONGATE_BRAND_NAME      (unset)   product name shown on the sign-in page
  SESSIONGATE_BRAND_LOGO_URL  (unset)   logo shown next to it: https:// URL or /path
  SHUTDOWN_TIMEOUT            10s       how long SIGTERM waits for in-flight requests
  LOG_LEVEL                   info      fatal, error, warn, info, debug, trace, silent

Signals: SIGHUP reloads the users file (an invalid file keeps the users in force);
SIGTERM/SIGINT drain and exit 0.
`;

/**
 * `sessiongate auth`: starts the auth service. Resolves -1 once it serves (the process then
 * lives until a signal), 1 for a bad setting or a failed start, 2 for a usage error.
 */
export async function authCommand(argv: string[], io: CliIo): Promise<number> {
  return runServiceCommand(argv, io, {
    name: 'auth',
    help: AUTH_HELP,
    flags: { users: 'SESSIONGATE_USERS', host: 'AUTH_HOST', port: 'AUTH_PORT', 'metrics-port': 'AUTH_METRICS_PORT' },
    loadConfig: async (env) => authConfigFromEnv(env),
    start: (config) => startAuthServer(config),
    startErrors: ['SA_ERR_INVALID_USERS_FILE'],
  });
}
