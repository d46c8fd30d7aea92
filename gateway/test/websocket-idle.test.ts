import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { gatewayConfigFromEnv } from '../src/settings.js';
import { generateKeySet } from '@sessiongate/session';
import { DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS } from '../src/defaults.js';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { startWsUpstream, wsConnect, type WsUpstream } from '../../test/support/websocket.js';

// A joined WebSocket that carries nothing either way for WEBSOCKET_IDLE_TIMEOUT is closed;
// traffic in either direction keeps it open.

const IDLE = 600;

let ws: WsUpstream;
let up: Upstream;
let t: TestGateway;
let port: number;

beforeAll(async () => {
  ws = await startWsUpstream();
  up = await startUpstream('svc');
  const extra = `  - name: ticker
    prefix: /ticker
    upstream: ${ws.url}
    auth: none
`;
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, extra), env: { WEBSOCKET_IDLE_TIMEOUT: `${IDLE}ms` } });
  port = await t.listen();
});

afterAll(async () => {
  await t?.close();
  await ws?.close();
  await up?.close();
});

describe('WebSocket idle timeout', () => {
  it('keeps a busy WebSocket open past the idle timeout, and closes it once it stays silent', async () => {
    const res = await wsConnect(port, '/ticker');
    try {
      expect(res.status).toBe(101);
      expect(await res.next()).toMatchObject({ text: 'hello' });
      // a message every third of the timeout, for three timeouts
      for (let i = 0; i < 9; i++) {
        await new Promise((r) => setTimeout(r, IDLE / 3));
        res.send(`tick ${i}`);
        expect(await res.next()).toMatchObject({ text: `echo:tick ${i}` });
      }
      // then nothing: the gateway closes the connection (next() answers null)
      expect(await res.next(IDLE + 4000)).toBeNull();
    } finally {
      res.close();
    }
  });

  it('defaults to 10 minutes and refuses a setting that is not a duration', () => {
    const base = { REDIS_URL: 'redis://127.0.0.1:1', X_SESSION_KEYS: JSON.stringify(generateKeySet('HS256')) };
    expect(DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS).toBe(10 * 60_000);
    expect(gatewayConfigFromEnv(base).websocketIdleTimeoutMs).toBe(DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS);
    expect(gatewayConfigFromEnv({ ...base, WEBSOCKET_IDLE_TIMEOUT: '90s' }).websocketIdleTimeoutMs).toBe(90_000);
    expect(() => gatewayConfigFromEnv({ ...base, WEBSOCKET_IDLE_TIMEOUT: 'soon' })).toThrow(/WEBSOCKET_IDLE_TIMEOUT/);
  });
});
