import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { ROOT } from './process.js';

/** The fixture script: a real oidc-provider in a process of its own (the demo runs it too). */
export const OIDC_FIXTURE = path.join(ROOT, 'test/fixtures/oidc-provider.mjs');

export interface FixtureUser {
  sub: string;
  username: string;
  password: string;
  claims: Record<string, unknown>;
}

export interface FixtureClient {
  client_id: string;
  client_secret: string;
  redirect_uris: string[];
  post_logout_redirect_uris?: string[];
  backchannel_logout_uri?: string;
  backchannel_logout_session_required?: boolean;
}

export type TamperMode = 'signature' | 'expired' | 'iss' | 'aud' | 'nonce';

export interface TestOidcProvider {
  readonly issuer: string;
  readonly child: ChildProcess;
  /** The provider's private signing key set (the test made it, so it can sign logout tokens). */
  readonly jwks: { keys: JWK[] };
  output(): string;
  /** Makes the provider's next token response carry a broken ID token. */
  tamper(mode: TamperMode): Promise<void>;
  /** Signs a logout token with the provider's key, claims as given (iss, iat, jti filled in unless set). */
  signLogoutToken(claims: Record<string, unknown>, o?: { kid?: string; typ?: string }): Promise<string>;
  stop(): Promise<void>;
}

/** A port nothing listens on (bound, then released): for a provider that is down. */
export async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** Starts the fixture provider on a free loopback port and waits until it listens. */
export async function startOidcProvider(o: { users: FixtureUser[]; clients: FixtureClient[] }): Promise<TestOidcProvider> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(privateKey)), kid: `rs-${Date.now()}`, alg: 'RS256', use: 'sig' };
  const jwks = { keys: [jwk] };
  const child = spawn(process.execPath, [OIDC_FIXTURE], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OIDC_FIXTURE: JSON.stringify({ port: 0, users: o.users, clients: o.clients, jwks }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const issuer = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`oidc-provider did not start:\n${out}`)), 20_000);
    const check = () => {
      const m = /^oidc-provider ready: (\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', check);
    void exited.then(() => reject(new Error(`oidc-provider exited:\n${out}`)));
  });
  const key = await importJWK(jwk, 'RS256');
  return {
    issuer,
    child,
    jwks,
    output: () => out,
    async tamper(mode) {
      const res = await fetch(`${issuer}/__fixture/tamper`, { method: 'POST', body: JSON.stringify({ mode }) });
      if (res.status !== 204) throw new Error(`tamper: ${res.status}`);
    },
    async signLogoutToken(claims, x = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: issuer, iat: now, exp: now + 120, jti: `jti-${Math.random().toString(36).slice(2)}`, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: x.kid ?? jwk.kid!, typ: x.typ ?? 'logout+jwt' })
        .sign(key);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    },
  };
}
