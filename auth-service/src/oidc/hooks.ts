import type { FastifyPluginAsync } from 'fastify';
import { PasswordLoginDisabled } from '../errors.js';
import type { Identity } from '../identity.js';
import { browserForm, loginPageUrl } from '../routes/login-page.js';
import type { AuthRouteOptions } from '../routes/options.js';
import type { OidcConfig } from './config.js';
import type { OidcProviders } from './providers.js';
import { providerOfUserId } from './rules.js';

/** What the shared sign-in and sign-out routes need to know about OpenID Connect. */
export interface OidcHooks {
  /** False: the password form is hidden and POST /auth/login refuses. */
  readonly passwordLogin: boolean;
  /** One "Sign in with …" button each, in the file's order. */
  readonly providers: readonly { readonly id: string; readonly displayName: string }[];
  /** Where a browser goes after signing out of a session a provider signed in, or null. */
  logoutRedirect(identity: Identity): string | null;
  /** Whether a user id is one a provider signed in (not in the users directory). */
  isProviderUser(sub: string): boolean;
}

export function oidcHooks(config: OidcConfig, providers: OidcProviders): OidcHooks {
  return Object.freeze({
    passwordLogin: config.passwordLogin,
    providers: Object.freeze(config.providers.map((p) => Object.freeze({ id: p.id, displayName: p.displayName }))),
    logoutRedirect(identity: Identity) {
      const id = providerOfUserId(identity.sub);
      return id && providers.get(id) ? `/auth/oidc/${id}/signed-out` : null;
    },
    isProviderUser(sub: string) {
      const id = providerOfUserId(sub);
      return id !== null && providers.get(id) !== undefined;
    },
  });
}

/**
 * POST /auth/login when password sign-in is switched off: 403 for API clients, the sign-in
 * page (which then offers only the providers) for a browser's form.
 */
export const passwordLoginOff: FastifyPluginAsync<AuthRouteOptions> = async (fastify) => {
  fastify.post('/auth/login', async (request, reply) => {
    const browser = browserForm(request);
    if (browser) return reply.redirect(loginPageUrl({ next: browser.next }), 303);
    throw new PasswordLoginDisabled();
  });
};
