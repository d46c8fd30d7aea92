import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import * as client from 'openid-client';
import { Counter } from 'prom-client';
import { sessionSetCookie } from '@sessiongate/session';
import { BadRequest, NotFound, SessionStoreUnavailable, storeCall } from '../errors.js';
import { DEFAULT_NEXT, safeNext } from '../routes/login-page.js';
import type { AuthRouteOptions } from '../routes/options.js';
import type { OidcConfig, OidcProviderConfig } from './config.js';
import { InvalidLogoutToken, verifyLogoutToken } from './logout-token.js';
import { sendFailure, sendSignedOut, type SignInFailure } from './pages.js';
import type { OidcProviders } from './providers.js';
import { admit, userIdFor } from './rules.js';
import { OidcState, clearFlowSetCookie, flowSetCookie, readFlowCookie } from './state.js';

export interface OidcRoutesOptions extends AuthRouteOptions {
  oidcConfig: OidcConfig;
  providers: OidcProviders;
}

// any string: an id no provider has is answered with the unknown-provider page
interface ProviderParams {
  provider: string;
}

/** A network failure or timeout talking to a provider, as opposed to an answer we refused. */
function isUnreachable(err: unknown): boolean {
  const e = err as { name?: string; cause?: { code?: unknown } } | null;
  if (!e) return false;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
  return err instanceof TypeError && typeof e.cause?.code === 'string';
}

/** What a log line may say about a failure: its code and message, never a token or a cause's body. */
function reasonOf(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; error?: unknown; message?: unknown; cause?: { code?: unknown } } | null;
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : 'error';
  // an OAuth error answered by the provider (invalid_grant, ...) says the most
  const oauth = typeof e?.error === 'string' && /^[\x20-\x7e]{1,64}$/.test(e.error) ? `${e.error}: ` : '';
  const message = oauth + (typeof e?.message === 'string' ? e.message.slice(0, 200) : 'unknown');
  return { code, message };
}

/**
 * OpenID Connect sign-in (authorization code flow with PKCE, state and nonce), the page that
 * hands a signed-out browser on to the provider's own sign-out, and back-channel logout.
 */
const oidcRoutes: FastifyPluginAsync<OidcRoutesOptions> = async (fastify, opts) => {
  const { providers, session, metrics } = opts;
  const store = fastify.sessionStore;
  const state = new OidcState(fastify.sessionStore.redis, session.keyPrefix);
  const secure = opts.cookie.secure;
  const registers = [metrics.registry];
  const logins = new Counter({
    name: 'sessiongate_auth_oidc_logins_total',
    help: 'OpenID Connect sign-ins by provider and outcome',
    labelNames: ['provider', 'outcome'],
    registers,
  });
  const backchannel = new Counter({
    name: 'sessiongate_auth_oidc_backchannel_logouts_total',
    help: 'Back-channel logout requests by provider and outcome (ok, invalid, replayed, unavailable)',
    labelNames: ['provider', 'outcome'],
    registers,
  });

  function fail(request: FastifyRequest, reply: FastifyReply, p: OidcProviderConfig, failure: SignInFailure, reason: string, next: string | null) {
    logins.inc({ provider: p.id, outcome: failure });
    request.log.warn({ event: 'oidc-login', provider: p.id, outcome: failure, reason, ip: request.clientAddress }, 'oidc sign-in failed');
    return sendFailure(reply, failure, p.displayName, next);
  }

  fastify.get<{ Params: ProviderParams }>('/auth/oidc/:provider/start', async (request, reply) => {
    const p = providers.get(request.params.provider);
    const next = safeNext((request.query as Record<string, unknown> | undefined)?.next);
    if (!p) return sendFailure(reply, 'unknown_provider', '', next);
    let config: client.Configuration;
    try {
      config = await providers.configuration(p);
    } catch (err) {
      const r = reasonOf(err);
      return fail(request, reply, p, 'unreachable', `discovery: ${r.code}: ${r.message}`, next);
    }
    const codeVerifier = client.randomPKCECodeVerifier();
    const flow = { provider: p.id, state: client.randomState(), nonce: client.randomNonce(), codeVerifier, next };
    let key: string;
    try {
      key = await state.putFlow(flow);
    } catch (err) {
      request.log.error({ err }, 'could not store an oidc sign-in');
      return fail(request, reply, p, 'unavailable', 'redis', next);
    }
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: p.redirectUri,
      scope: p.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: flow.state,
      nonce: flow.nonce,
    });
    return reply.header('set-cookie', flowSetCookie(key, secure)).redirect(url.href, 303);
  });

  fastify.get<{ Params: ProviderParams }>('/auth/oidc/:provider/callback', async (request, reply) => {
    const p = providers.get(request.params.provider);
    if (!p) return sendFailure(reply, 'unknown_provider', '', null);
    // the flow cookie is single use whatever happens next
    reply.header('set-cookie', clearFlowSetCookie(secure));
    const key = readFlowCookie(request.headers.cookie);
    let flow;
    try {
      flow = key ? await state.takeFlow(key) : null;
    } catch (err) {
      request.log.error({ err }, 'could not read an oidc sign-in');
      return fail(request, reply, p, 'unavailable', 'redis', null);
    }
    if (!flow) return fail(request, reply, p, 'stale', key ? 'no such sign-in (used, expired or unknown)' : 'no sign-in cookie', null);
    const next = flow.next;
    if (flow.provider !== p.id) return fail(request, reply, p, 'stale', 'the sign-in was started with another provider', next);
    const query = (request.query ?? {}) as Record<string, unknown>;
    if (query.state !== flow.state) return fail(request, reply, p, 'stale', 'state does not match', next);
    if (query.error !== undefined) {
      const code = typeof query.error === 'string' && /^[\x20-\x7e]{1,64}$/.test(query.error) ? query.error : 'unreadable';
      return fail(request, reply, p, 'refused', `the provider answered ${code}`, next);
    }

    let claims: Record<string, unknown>;
    try {
      const config = await providers.configuration(p);
      const current = new URL(p.redirectUri);
      current.search = new URL(request.url, 'http://callback.invalid').search;
      const tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: flow.codeVerifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
      // only the verified ID token's claims are kept: the access and refresh tokens end here
      claims = { ...tokens.claims()! };
    } catch (err) {
      const r = reasonOf(err);
      return fail(request, reply, p, isUnreachable(err) ? 'unreachable' : 'invalid_response', `${r.code}: ${r.message}`, next);
    }

    const admission = admit(p, claims);
    if (!admission.admitted) return fail(request, reply, p, 'forbidden', admission.reason, next);
    if (admission.dropped.length) request.log.warn({ provider: p.id, claims: admission.dropped }, 'oidc claims too long or unsafe for a session: left out');

    const ua = request.headers['user-agent'];
    let created;
    try {
      created = await store.create({
        sub: admission.sub,
        roles: admission.roles,
        claims: admission.claims,
        ...(typeof ua === 'string' && ua ? { userAgent: ua } : {}),
        idleTimeoutMs: session.idleTimeoutMs,
        absoluteTimeoutMs: session.absoluteTimeoutMs,
      });
    } catch (err) {
      request.log.error({ err }, 'could not create a session');
      return fail(request, reply, p, 'unavailable', 'redis', next);
    }
    const ours = { sub: admission.sub, sid: created.record.sid };
    if (typeof claims.sid === 'string' && claims.sid) {
      try {
        await state.link(p.id, claims.sid, ours, created.record.absoluteExpiresAt);
      } catch (err) {
        // a session back-channel logout could not find must not exist
        request.log.error({ err }, 'could not link the session to the provider session');
        await store.destroyBySid(ours.sub, ours.sid).catch(() => undefined);
        return fail(request, reply, p, 'unavailable', 'redis', next);
      }
    }

    logins.inc({ provider: p.id, outcome: 'success' });
    metrics.sessionsCreated.inc();
    request.log.info({ event: 'oidc-login', provider: p.id, outcome: 'success', user: ours.sub, sid: ours.sid, roles: admission.roles, ip: request.clientAddress }, 'login');
    const old = request.identity;
    if (old && old.sid !== ours.sid) {
      // a new token on every sign-in: the session this browser had before ends now
      await store.destroyBySid(old.sub, old.sid).catch((err: unknown) => request.log.warn({ err, sid: old.sid }, 'could not end the previous session'));
    }
    // added to the flow cookie's clearing, set above
    return reply.header('set-cookie', sessionSetCookie(created.token, opts.cookie)).redirect(next ?? DEFAULT_NEXT, 303);
  });

  fastify.get<{ Params: ProviderParams }>('/auth/oidc/:provider/signed-out', async (request, reply) => {
    const p = providers.get(request.params.provider);
    if (!p) return sendFailure(reply, 'unknown_provider', '', null);
    let endSession: string | null = null;
    try {
      const config = providers.peek(p.id) ?? (await providers.configuration(p));
      if (config.serverMetadata().end_session_endpoint) {
        endSession = client.buildEndSessionUrl(config, { post_logout_redirect_uri: p.postLogoutRedirectUri }).href;
      }
    } catch (err) {
      // the session here is already over: without the provider, the browser just stays signed out here
      request.log.warn({ provider: p.id, reason: reasonOf(err).code }, 'provider sign-out unavailable');
    }
    return sendSignedOut(reply, p.displayName, endSession);
  });

  fastify.post<{ Params: ProviderParams }>('/auth/oidc/:provider/backchannel-logout', async (request, reply) => {
    const p = providers.get(request.params.provider);
    if (!p) throw new NotFound('No such provider');
    const body = request.body as Record<string, unknown> | undefined;
    const token = body && typeof body === 'object' ? body.logout_token : undefined;
    if (typeof token !== 'string' || token === '') throw new BadRequest('logout_token is required (form-encoded)');
    const refuse = (outcome: string, message: string) => {
      backchannel.inc({ provider: p.id, outcome });
      request.log.warn({ event: 'oidc-backchannel-logout', provider: p.id, outcome, reason: message }, 'back-channel logout refused');
      return reply.code(400).send({ error: 'invalid_request', error_description: message });
    };

    let req;
    try {
      const config = await providers.configuration(p);
      req = await verifyLogoutToken(token, p, config.serverMetadata().issuer, await providers.keys(p));
    } catch (err) {
      if (err instanceof InvalidLogoutToken) return refuse('invalid', err.message);
      backchannel.inc({ provider: p.id, outcome: 'unavailable' });
      request.log.warn({ provider: p.id, reason: reasonOf(err) }, 'back-channel logout: the provider keys cannot be had');
      return reply.code(503).send({ error: 'temporarily_unavailable', error_description: 'The provider keys cannot be fetched, retry later' });
    }
    if (!(await storeCall(() => state.claimJti(p.id, req.jti, req.exp)))) return refuse('replayed', 'the logout token was already used');

    const userId = req.sub === null ? null : userIdFor(p.id, req.sub);
    let ended = 0;
    try {
      if (req.sid !== null) {
        const idpSid = req.sid;
        for (const s of await state.linked(p.id, idpSid)) {
          if (userId !== null && s.sub !== userId) continue;
          if (await store.destroyBySid(s.sub, s.sid)) ended++;
        }
        await state.unlink(p.id, idpSid);
      } else {
        ended = await store.destroyAll(userId!);
      }
    } catch (err) {
      await state.releaseJti(p.id, req.jti).catch(() => undefined);
      backchannel.inc({ provider: p.id, outcome: 'unavailable' });
      throw new SessionStoreUnavailable({ cause: err });
    }
    backchannel.inc({ provider: p.id, outcome: 'ok' });
    request.log.info({ event: 'oidc-backchannel-logout', provider: p.id, user: userId, ended }, 'back-channel logout');
    return reply.code(200).send();
  });
};

export default oidcRoutes;
