import type { Brand } from '@sessiongate/service-kit';
import type { CookieAttributes, SessionSettings } from '@sessiongate/session';
import type { AuthMetrics } from '../metrics.js';
import type { OidcHooks } from '../oidc/hooks.js';
import type { LoginThrottle } from '../throttle.js';
import type { UserDirectory } from '../users/directory.js';

/** What every route plugin of the auth service is registered with. */
export interface AuthRouteOptions {
  directory: UserDirectory;
  session: SessionSettings;
  cookie: CookieAttributes;
  throttle: LoginThrottle;
  metrics: AuthMetrics;
  /** Origins besides the request's own that may post to login and logout. */
  allowedOrigins: readonly string[];
  /** Where a browser lands after signing in without a `next` (LOGIN_DEFAULT_NEXT). */
  defaultNext: string;
  /** The product's name and logo on the sign-in page. */
  brand: Brand | null;
  /** OpenID Connect sign-in, when SESSIONGATE_OIDC names a file. */
  oidc?: OidcHooks;
}
