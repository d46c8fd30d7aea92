import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import type { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { authConfigFromEnv, buildAuthService, defaultParams, hashPassword, type AuthConfig, type AuthService } from '@sessiongate/auth-service';
import { KeyLayout, SessionStore, createRedisClient, sessionRef, waitUntilReady, type RedisClient } from '@sessiongate/session';
import { readSession } from './sessions.js';

/** scrypt cost of every test hash: 2^14 keeps tests fast (the default, 2^17, is tested once). */
export const TEST_SCRYPT_COST = '14';

export interface TestUser {
  password: string;
  roles?: string[];
  disabled?: boolean;
  profile?: Record<string, string | number | boolean>;
}

export interface TestAuthOptions {
  redisUrl: string;
  /** Share the key prefix (sessions, throttling) of another instance. */
  keyPrefix?: string;
  /** Share the users file of another instance (else one is written from `users`). */
  usersFile?: string;
  users?: Record<string, TestUser>;
  /** Share the X-Session keys of another instance. */
  keysJson?: string;
  /** Extra environment settings, e.g. { LOGIN_MAX_FAILURES_PER_IP: '3' }. */
  env?: Record<string, string>;
  /** Capture the JSON log lines. */
  logStream?: NodeJS.WritableStream;
}

export interface TestAuth {
  readonly svc: AuthService;
  readonly config: AuthConfig;
  /** The environment the service was configured from (handy for the users CLI). */
  readonly env: Record<string, string>;
  readonly keyPrefix: string;
  readonly keys: KeyLayout;
  readonly keysJson: string;
  readonly usersFile: string;
  /** A client of the test's own, for looking at and arranging Redis directly. */
  readonly redis: RedisClient;
  readonly store: SessionStore;
  /** Signs an X-Session the way the gateway does (HS256, iss sessiongate, aud auth, 60 s). */
  xSession(claims: { sub: string; sid: string; roles?: readonly string[] }, o?: { aud?: string; iss?: string; exp?: number; kid?: string }): Promise<string>;
  /** The X-Session the gateway would send for this cookie token (read from Redis). */
  xSessionFor(token: string): Promise<string>;
  /** POST /auth/login as JSON. */
  login(username: string, password: string, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** A users file in a fresh temporary directory; returns its path. */
export async function writeUsersFile(users: Record<string, TestUser>, dir = mkdtempSync(path.join(tmpdir(), 'sg-auth-users-'))): Promise<string> {
  const entries: Record<string, unknown> = {};
  for (const [name, u] of Object.entries(users)) {
    entries[name] = {
      roles: u.roles ?? [],
      password: await hashPassword(u.password, defaultParams(Number(TEST_SCRYPT_COST))),
      ...(u.disabled ? { disabled: true } : {}),
      ...(u.profile ? { profile: u.profile } : {}),
    };
  }
  const file = path.join(dir, 'users.yaml');
  writeFileSync(file, stringify({ version: 1, users: entries }), { mode: 0o600 });
  return file;
}

export function newKeysJson(kid = 'test-hs'): string {
  return JSON.stringify({ keys: [{ kty: 'oct', k: randomBytes(32).toString('base64url'), kid, alg: 'HS256', use: 'sig' }] });
}

/** The token of a login response's Set-Cookie. */
export function cookieToken(res: LightMyRequestResponse, name = 'sid'): string {
  const sc = [res.headers['set-cookie'] ?? []].flat();
  const own = sc.find((c) => c.startsWith(`${name}=`));
  if (!own) throw new Error(`no ${name} cookie in ${JSON.stringify(sc)}`);
  return own.slice(name.length + 1).split(';')[0]!;
}

/** Removes every key under a prefix (never FLUSHDB: the Redis may be shared). */
export async function deletePrefix(redis: RedisClient, prefix: string): Promise<void> {
  const stream = (redis as Redis).scanStream({ match: `${prefix}*`, count: 500 });
  for await (const keys of stream as AsyncIterable<string[]>) if (keys.length) await redis.del(...keys);
}

/** An auth service built from app.ts on a real Redis, isolated by its own key prefix. */
export async function startTestAuth(o: TestAuthOptions): Promise<TestAuth> {
  const keyPrefix = o.keyPrefix ?? `sgtest:${randomUUID()}:`;
  const keysJson = o.keysJson ?? newKeysJson();
  const ownDir = o.usersFile === undefined;
  const usersFile = o.usersFile ?? (await writeUsersFile(o.users ?? {}));
  const env: Record<string, string> = {
    REDIS_URL: o.redisUrl,
    SESSIONGATE_REDIS_PREFIX: keyPrefix,
    X_SESSION_KEYS: keysJson,
    SESSIONGATE_USERS: usersFile,
    SESSIONGATE_SCRYPT_COST: TEST_SCRYPT_COST,
    ...o.env,
  };
  const config = authConfigFromEnv(env);
  const svc = await buildAuthService(config, o.logStream ? { logger: { level: 'info', stream: o.logStream } } : {});
  const redis = createRedisClient({ connection: { mode: 'standalone', url: o.redisUrl } });
  await waitUntilReady(redis, 5000);
  const keys = new KeyLayout(keyPrefix);
  const store = new SessionStore(redis, keys);
  const jwk = (JSON.parse(keysJson) as { keys: { k: string; kid: string }[] }).keys[0]!;
  const secret = Buffer.from(jwk.k, 'base64url');

  const xSession: TestAuth['xSession'] = async (claims, x = {}) => {
    const iat = Math.floor(Date.now() / 1000);
    return new SignJWT({ roles: [...(claims.roles ?? [])], sid: claims.sid })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: x.kid ?? jwk.kid })
      .setIssuer(x.iss ?? 'sessiongate')
      .setAudience(x.aud ?? 'auth')
      .setSubject(claims.sub)
      .setIssuedAt(iat)
      .setExpirationTime(x.exp ?? iat + 60)
      .sign(secret);
  };

  return {
    svc,
    config,
    env,
    keyPrefix,
    keys,
    keysJson,
    usersFile,
    redis,
    store,
    xSession,
    async xSessionFor(token) {
      const record = await readSession(store, sessionRef(token));
      if (!record) throw new Error('no session for this token');
      return xSession({ sub: record.sub, sid: record.sid, roles: record.roles });
    },
    login(username, password, headers = {}) {
      return svc.app.inject({ method: 'POST', url: '/auth/login', headers, payload: { username, password } });
    },
    async close() {
      await svc.close();
      await deletePrefix(redis, keyPrefix);
      await redis.quit();
      if (ownDir) rmSync(path.dirname(usersFile), { recursive: true, force: true });
    },
  };
}
