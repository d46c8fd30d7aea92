import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startTestAuth, type TestAuth, type TestUser } from './auth-service.js';
import { startTestGateway, type TestGateway } from './gateway.js';
import { deadPort, startOidcProvider, type FixtureUser, type TestOidcProvider } from './oidc-provider.js';
import { startUpstream, type Upstream } from './upstream.js';
import { WebClient, linkHref, readForm, type Page } from './web-client.js';

// The whole OpenID Connect path on real processes and sockets: a real provider
// (oidc-provider, its own process), the auth service and one or more gateways listening on
// loopback, and an upstream that records the X-Session it is sent.

export const CLIENT_ID = 'sessiongate-test';
export const CLIENT_SECRET = 'test-client-secret-0123456789abcdef';

export const OIDC_USERS: FixtureUser[] = [
  {
    sub: 'u-ada',
    username: 'ada',
    password: 'ada-idp-password',
    claims: { name: 'Ada Admin', email: 'ada@example.com', email_verified: true, groups: ['staff', 'platform-admins'] },
  },
  {
    sub: 'u-sam',
    username: 'sam',
    password: 'sam-idp-password',
    claims: { name: 'Sam Staff', email: 'sam@example.com', email_verified: true, groups: ['staff'] },
  },
  // a domain no rule allows
  { sub: 'u-eve', username: 'eve', password: 'eve-idp-password', claims: { name: 'Eve Outsider', email: 'eve@elsewhere.test', email_verified: true, groups: [] } },
  // the right domain, but the provider never verified the address
  { sub: 'u-una', username: 'una', password: 'una-idp-password', claims: { name: 'Una Verified', email: 'una@example.com', email_verified: false, groups: ['staff'] } },
];

/** The rules of the test provider: example.com addresses are users, platform-admins are admins too. */
export const RULES_YAML = `    require:
      - { claim: email_verified, equals: true }
    rules:
      - roles: [user]
        when: [{ email_domain: [example.com] }]
      - roles: [admin]
        when: [{ claim: groups, includes: platform-admins }]`;

export function oidcFileYaml(o: { baseUrl: string; issuer: string; secretFile: string; extraProviders?: string; passwordLogin?: boolean }): string {
  return `version: 1
base_url: ${o.baseUrl}
${o.passwordLogin === false ? 'password_login: false\n' : ''}providers:
  - id: demo
    display_name: Demo IdP
    issuer: ${o.issuer}
    client_id: ${CLIENT_ID}
    client_secret_file: ${o.secretFile}
    scopes: [openid, email, profile, groups]
    claims: [name, email]
${RULES_YAML}
${o.extraProviders ?? ''}`;
}

export interface OidcStack {
  readonly idp: TestOidcProvider;
  readonly auth: TestAuth;
  readonly gateways: TestGateway[];
  readonly app: Upstream;
  /** The first gateway's origin, http://127.0.0.1:N */
  readonly base: string;
  readonly authUrl: string;
  /** The auth service's JSON log lines so far. */
  logs(): string;
  close(): Promise<void>;
}

function routes(authUrl: string, appUrl: string): string {
  return `version: 1
routes:
  - name: auth
    prefix: /auth
    upstream: ${authUrl}
    auth: optional
  - name: app
    prefix: /app
    upstream: ${appUrl}
    roles: [user]
  - name: admin
    prefix: /admin
    upstream: ${appUrl}
    roles: [admin]
`;
}

export async function startOidcStack(o: { redisUrl: string; gateways?: number; users?: Record<string, TestUser>; extraProviders?: string; env?: Record<string, string> }): Promise<OidcStack> {
  const [gwPort, authPort] = [await deadPort(), await deadPort()];
  const base = `http://127.0.0.1:${gwPort}`;
  const authUrl = `http://127.0.0.1:${authPort}`;
  const idp = await startOidcProvider({
    users: OIDC_USERS,
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${base}/auth/oidc/demo/callback`],
        post_logout_redirect_uris: [`${base}/auth/login`],
        backchannel_logout_uri: `${authUrl}/auth/oidc/demo/backchannel-logout`,
        backchannel_logout_session_required: true,
      },
    ],
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'sg-oidc-'));
  const secretFile = path.join(dir, 'client-secret');
  writeFileSync(secretFile, `${CLIENT_SECRET}\n`, { mode: 0o600 });
  const oidcFile = path.join(dir, 'oidc.yaml');
  writeFileSync(oidcFile, oidcFileYaml({ baseUrl: base, issuer: idp.issuer, secretFile, extraProviders: o.extraProviders }));
  let logText = '';
  const logStream = new Writable({
    write(chunk, _enc, cb) {
      logText += chunk.toString();
      cb();
    },
  });
  const app = await startUpstream('app');
  const auth = await startTestAuth({ redisUrl: o.redisUrl, users: o.users ?? {}, env: { SESSIONGATE_OIDC: oidcFile, ...o.env }, logStream });
  await auth.svc.app.listen({ host: '127.0.0.1', port: authPort });
  const gateways: TestGateway[] = [];
  for (let i = 0; i < (o.gateways ?? 1); i++) {
    const gw = await startTestGateway({ redisUrl: o.redisUrl, routes: routes(authUrl, app.url), keyPrefix: auth.keyPrefix, keysJson: auth.keysJson });
    gateways.push(gw);
  }
  await gateways[0]!.gw.app.listen({ host: '127.0.0.1', port: gwPort });
  return {
    idp,
    auth,
    gateways,
    app,
    base,
    authUrl,
    logs: () => logText,
    async close() {
      for (const g of gateways) await g.close();
      await auth.close();
      await app.close();
      await idp.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** From the sign-in page, through the provider's form, back to wherever the flow ends. */
export async function signInWithIdp(client: WebClient, stack: OidcStack, username: string, password: string, next = '/app'): Promise<Page> {
  const login = await client.go(`${stack.base}/auth/login?next=${encodeURIComponent(next)}`);
  const start = linkHref(login.body, 'Sign in with Demo IdP', login.url);
  const form = await client.go(start);
  if (!form.url.startsWith(stack.idp.issuer)) throw new Error(`expected the provider's form, got ${form.url} (${form.status}):\n${form.body.slice(0, 500)}`);
  const { action } = readForm(form.body, form.url);
  return client.go(action, { form: { username, password } });
}

/** Like signInWithIdp, but stops before the browser is sent back to the callback; resolves the callback URL. */
export async function callbackUrlFor(client: WebClient, stack: OidcStack, username: string, password: string): Promise<string> {
  const login = await client.go(`${stack.base}/auth/login?next=%2Fapp`);
  const form = await client.go(linkHref(login.body, 'Sign in with Demo IdP', login.url));
  const { action } = readForm(form.body, form.url);
  return client.goUntil(action, (u) => u.pathname === '/auth/oidc/demo/callback', { form: { username, password } });
}
