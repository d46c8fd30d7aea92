import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
import * as client from 'openid-client';
import type { OidcProviderConfig } from './config.js';

// The providers' discovered metadata, fetched when first needed (a provider that is down at
// start must not stop the service: password sign-in goes on), kept for a while, and fetched
// again after a failure on the next sign-in.

/** How long discovered metadata is used before it is fetched again. @default 1 h */
export const DISCOVERY_TTL_MS = 60 * 60_000;
/** Timeout of each request to a provider (discovery, token, keys). @default 5 s */
export const PROVIDER_TIMEOUT_SECONDS = 5;

interface Discovered {
  readonly config: client.Configuration;
  readonly jwks: JWTVerifyGetKey | null;
  readonly at: number;
}

export class OidcProviders {
  private readonly byId: ReadonlyMap<string, OidcProviderConfig>;
  private readonly discovered = new Map<string, Discovered>();
  private readonly pending = new Map<string, Promise<Discovered>>();

  constructor(providers: readonly OidcProviderConfig[]) {
    this.byId = new Map(providers.map((p) => [p.id, p]));
  }

  get list(): readonly OidcProviderConfig[] {
    return [...this.byId.values()];
  }

  get(id: string): OidcProviderConfig | undefined {
    return this.byId.get(id);
  }

  /** The provider's client configuration, discovering it first when needed; throws when the provider cannot be reached. */
  async configuration(p: OidcProviderConfig): Promise<client.Configuration> {
    return (await this.discover(p)).config;
  }

  /** The provider's signing keys (its jwks_uri), for logout tokens. */
  async keys(p: OidcProviderConfig): Promise<JWTVerifyGetKey> {
    const d = await this.discover(p);
    if (!d.jwks) throw new Error('the provider publishes no jwks_uri');
    return d.jwks;
  }

  /** Metadata already discovered (never fetches): for logout, which must not wait on a provider. */
  peek(id: string): client.Configuration | null {
    return this.discovered.get(id)?.config ?? null;
  }

  private discover(p: OidcProviderConfig, now = Date.now()): Promise<Discovered> {
    const have = this.discovered.get(p.id);
    if (have && now - have.at < DISCOVERY_TTL_MS) return Promise.resolve(have);
    let run = this.pending.get(p.id);
    if (!run) {
      // concurrent sign-ins share one discovery; metadata that is due for a refresh is still
      // used while the provider cannot be reached
      run = this.fetch(p)
        .catch((err: unknown) => {
          if (have) return have;
          throw err;
        })
        .finally(() => this.pending.delete(p.id));
      this.pending.set(p.id, run);
    }
    return run;
  }

  private async fetch(p: OidcProviderConfig): Promise<Discovered> {
    const issuer = new URL(p.issuer);
    const config = await client.discovery(
      issuer,
      p.clientId,
      undefined,
      client.ClientSecretBasic(p.clientSecret),
      {
        timeout: PROVIDER_TIMEOUT_SECONDS,
        // ID token signatures are checked against the provider's keys even though TLS alone
        // would do (OIDC Core 3.1.3.7): a tampered token is refused whatever the transport;
        // plain http only for a loopback issuer, which the configuration allows and nothing else
        execute: issuer.protocol === 'http:' ? [client.enableNonRepudiationChecks, client.allowInsecureRequests] : [client.enableNonRepudiationChecks],
      },
    );
    const jwksUri = config.serverMetadata().jwks_uri;
    const jwks = jwksUri ? createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: PROVIDER_TIMEOUT_SECONDS * 1000 }) : null;
    const d: Discovered = { config, jwks, at: Date.now() };
    this.discovered.set(p.id, d);
    return d;
  }
}
