import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeySet, parseKeySet } from '@sessiongate/session';
import { XSessionSigner } from 'sessiongate';
import { ROOT } from './support/process.js';

// The Node snippets of docs/x-session.md "Verifying X-Session", run as written: extracted
// from the page into modules (next to the workspace's node_modules, so `jose` resolves),
// fed headers signed by the gateway's own signer, right and wrong.

type Verify = (header: string, route: string) => Promise<{ sub?: string; roles?: unknown }>;

const dir = path.join(ROOT, 'node_modules', `.x-session-snippets-${randomUUID()}`);
const eddsaKeys = parseKeySet(JSON.stringify(generateKeySet('EdDSA', 'ed-1')), 'test');
const hsKeysJson = JSON.stringify(generateKeySet('HS256', 'hs-1'));
const hsKeys = parseKeySet(hsKeysJson, 'test');
let jwksServer: http.Server;

function snippet(name: string): string {
  const doc = readFileSync(path.join(ROOT, 'docs/x-session.md'), 'utf8');
  const m = new RegExp('^```js x-session-snippet=' + name + '\\n([\\s\\S]*?)^```$', 'm').exec(doc);
  if (!m) throw new Error(`docs/x-session.md has no snippet ${name}`);
  return m[1]!;
}

async function load(name: string): Promise<Verify> {
  const file = path.join(dir, `${name}.mjs`);
  writeFileSync(file, snippet(name));
  return ((await import(pathToFileURL(file).href)) as { verifyXSession: Verify }).verifyXSession;
}

const claims = { sub: 'ada', roles: ['user'], sid: 'sid-1', extra: { name: 'Ada' } };

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  jwksServer = http.createServer((_req, res) => {
    res.setHeader('content-type', 'application/jwk-set+json');
    res.end(JSON.stringify(eddsaKeys.publicJwks));
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  process.env.GATEWAY_JWKS_URL = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
  const keysFile = path.join(dir, 'keys.json');
  writeFileSync(keysFile, hsKeysJson);
  process.env.X_SESSION_KEYS_FILE = keysFile;
});

afterAll(async () => {
  await new Promise((r) => jwksServer?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('docs/x-session.md: Verifying X-Session', () => {
  it('EdDSA through the JWKS: accepts the gateway header for its route, refuses another route and HS256', async () => {
    const verify = await load('eddsa');
    const token = new XSessionSigner(eddsaKeys).sign('orders', claims).token;
    expect(await verify(token, 'orders')).toMatchObject({ sub: 'ada', roles: ['user'], name: 'Ada', iss: 'sessiongate', aud: 'orders' });
    await expect(verify(token, 'reports')).rejects.toThrow(/aud/);
    await expect(verify(new XSessionSigner(hsKeys).sign('orders', claims).token, 'orders')).rejects.toThrow();
  });

  it('HS256 with the shared secret: accepts by kid, refuses another route, a tampered token and EdDSA', async () => {
    const verify = await load('hs256');
    const token = new XSessionSigner(hsKeys).sign('orders', claims).token;
    expect(await verify(token, 'orders')).toMatchObject({ sub: 'ada', roles: ['user'], aud: 'orders' });
    await expect(verify(token, 'reports')).rejects.toThrow(/aud/);
    const [h, p, s] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), roles: ['admin'] })).toString('base64url');
    await expect(verify(`${h}.${forged}.${s}`, 'orders')).rejects.toThrow(/signature/);
    await expect(verify(new XSessionSigner(eddsaKeys).sign('orders', claims).token, 'orders')).rejects.toThrow();
  });
});
