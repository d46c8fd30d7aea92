import { Type, type Static } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { sessionSetCookie } from '@sessiongate/session';
import { BadRequest, InvalidCredentials, TooManyRequests, storeCall } from '../errors.js';
import { clientThrottleId } from '../throttle.js';
import { normalizeUserName } from '../users/directory.js';
import { MAX_PASSWORD_BYTES, passwordTooLong } from '../users/password.js';
import { browserForm, loginPageUrl, typedNameCookie, type LoginError } from './login-page.js';
import type { AuthRouteOptions } from './options.js';
import { sameOriginOnly } from './same-origin.js';

/** Largest login body accepted (JSON or form). */
export const LOGIN_BODY_LIMIT = 16 * 1024;
/** Longest user name looked at: longer ones can exist nowhere. */
export const MAX_USERNAME_LENGTH = 256;

const LoginBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: MAX_USERNAME_LENGTH }),
  // characters ≤ bytes: the exact byte limit is checked in the handler, before any hashing
  password: Type.String({ minLength: 1, maxLength: MAX_PASSWORD_BYTES }),
});
type LoginBody = Static<typeof LoginBody>;

/** The login page's error for a failed form login, or null when `err` is no login failure. */
function formFailure(err: unknown): LoginError | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'SA_ERR_INVALID_CREDENTIALS') return 'invalid';
  if (code === 'SA_ERR_TOO_MANY_REQUESTS') return 'throttled';
  return null;
}

/**
 * POST /auth/login: name + password → a fresh session and its cookie. JSON clients get
 * 204 / 401 / 429; a browser's form post gets the same outcome as a 303 (to `next`, or back
 * to the login page with the error), after exactly the same checks and throttling.
 */
const loginRoute: FastifyPluginAsync<AuthRouteOptions> = async (fastify, opts) => {
  const { directory, throttle, metrics, session } = opts;
  const store = fastify.sessionStore;

  fastify.post<{ Body: LoginBody }>(
    '/auth/login',
    { schema: { body: LoginBody }, bodyLimit: LOGIN_BODY_LIMIT, preValidation: sameOriginOnly(opts) },
    async (request, reply) => {
      const browser = browserForm(request);
      let token: string;
      try {
        token = await logIn(request, reply);
      } catch (err) {
        const failure = browser && formFailure(err);
        if (!failure) throw err;
        // Retry-After (throttled) is already on the reply and goes with the redirect; the
        // page says how long that is, and keeps the name that was typed
        const wait = Number(reply.getHeader('retry-after')) || undefined;
        reply.header('set-cookie', typedNameCookie(request.body.username, opts.cookie.secure));
        return reply.redirect(loginPageUrl({ error: failure, wait, next: browser.next }), 303);
      }
      reply.header('set-cookie', sessionSetCookie(token, opts.cookie));
      return browser ? reply.redirect(browser.next ?? opts.defaultNext, 303) : reply.code(204).send();
    },
  );

  /** Checks, throttles and creates the session; resolves its cookie token, or throws. */
  async function logIn(request: FastifyRequest<{ Body: LoginBody }>, reply: FastifyReply): Promise<string> {
    const { password } = request.body;
    if (passwordTooLong(password)) throw new BadRequest(`body/password must not be longer than ${MAX_PASSWORD_BYTES} bytes`);
    const name = normalizeUserName(request.body.username);
    const clientId = clientThrottleId(request.clientAddress);

    const decision = await storeCall(() => throttle.reserve(name, clientId));
    if (!decision.allowed) {
      metrics.logins.inc({ outcome: 'throttled' });
      metrics.throttled.inc({ scope: decision.scope });
      request.log.warn({ event: 'login', outcome: 'throttled', scope: decision.scope, ip: request.clientAddress }, 'login throttled');
      reply.header('retry-after', String(decision.retryAfterSeconds));
      throw new TooManyRequests();
    }

    const result = await directory.verify(name, password);
    if (result.outcome !== 'ok') {
      metrics.logins.inc({ outcome: result.outcome === 'disabled' ? 'disabled' : 'invalid_credentials' });
      // a name that is no user may be a password typed in the wrong field: never logged
      const user = result.outcome === 'unknown_user' ? '(unknown)' : name;
      request.log.info({ event: 'login', outcome: result.outcome, user, ip: request.clientAddress }, 'login failed');
      throw new InvalidCredentials();
    }

    const user = result.user;
    const created = await storeCall(() =>
      store.create({
        sub: user.name,
        roles: user.roles,
        claims: user.profile,
        ...userAgent(request),
        idleTimeoutMs: session.idleTimeoutMs,
        absoluteTimeoutMs: session.absoluteTimeoutMs,
      }),
    );

    // The user may have been given a new password, disabled or given other roles while the
    // password was being checked, and the change applied to their live sessions before this
    // one existed: read the user as they are now and apply it to this one too. A change made
    // after this read ends this session with the others.
    const now = await directory.current(user.name);
    const changed = !now ? 'removed' : now.user.disabled ? 'disabled' : now.credential !== result.credential ? 'password_changed' : null;
    if (changed) {
      await storeCall(() => store.destroyBySid(user.name, created.record.sid));
      metrics.logins.inc({ outcome: changed === 'password_changed' ? 'invalid_credentials' : 'disabled' });
      request.log.info({ event: 'login', outcome: changed, user: user.name, ip: request.clientAddress }, 'login failed: the user changed during the login');
      throw new InvalidCredentials();
    }
    const roles = now!.user.roles;
    if (!sameRoles(roles, user.roles)) await storeCall(() => store.setRoles(user.name, roles));

    metrics.logins.inc({ outcome: 'success' });
    metrics.sessionsCreated.inc();
    request.log.info({ event: 'login', outcome: 'success', user: user.name, sid: created.record.sid, ip: request.clientAddress }, 'login');
    if (created.evicted.length) {
      metrics.sessionsRevoked.inc({ reason: 'limit' }, created.evicted.length);
      request.log.info({ event: 'session-limit', user: user.name, ended: created.evicted }, 'session limit reached: oldest sessions ended');
    }

    // what follows is housekeeping: the session exists, so failures are logged, not answered
    await throttle.succeeded(name, clientId).catch((err: unknown) => request.log.warn({ err }, 'could not clear the login throttle'));
    const old = request.identity;
    if (old && old.sid !== created.record.sid) {
      // a new token on every login: the session this browser had before ends now
      const ended = await store.destroyBySid(old.sub, old.sid).catch((err: unknown) => {
        request.log.warn({ err, sid: old.sid }, 'could not end the previous session');
        return false;
      });
      if (ended) metrics.sessionsRevoked.inc({ reason: 'replaced' });
    }

    return created.token;
  }
};

function userAgent(request: FastifyRequest): { userAgent?: string } {
  const ua = request.headers['user-agent'];
  return typeof ua === 'string' && ua ? { userAgent: ua } : {};
}

function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

export default loginRoute;
