// The demo's ports: the defaults, moved by DEMO_BASE_PORT, or any free ones; refused when taken.
import net from 'node:net';
import { fail } from './config.mjs';

/** Resolves true when nothing listens on 127.0.0.1:port. */
export function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function choosePorts(env) {
  const names = ['gateway', 'gatewayMetrics', 'auth', 'authMetrics', 'node', 'python', 'idp', 'sessionData'];
  const raw = env.DEMO_BASE_PORT?.trim();
  let ports;
  if (!raw) {
    ports = { gateway: 8080, gatewayMetrics: 9091, auth: 4000, authMetrics: 9092, node: 4001, python: 4002, idp: 4003, sessionData: 8081 };
  } else if (raw === '0') {
    ports = {};
    for (const n of names) ports[n] = await freePort();
  } else {
    const base = Number(raw);
    const last = 65535 - (names.length - 1);
    if (!Number.isInteger(base) || base < 1024 || base > last) fail(`DEMO_BASE_PORT must be 0 or a port from 1024 to ${last}, not "${raw}"`);
    ports = Object.fromEntries(names.map((n, i) => [n, base + i]));
  }
  const taken = [];
  for (const n of names) if (!(await portIsFree(ports[n]))) taken.push(`${ports[n]} (${n})`);
  if (taken.length) {
    fail(
      `port ${taken.join(', ')} already in use on 127.0.0.1: stop what uses it (another demo?), ` +
        'or move the demo with DEMO_BASE_PORT=18080 (or DEMO_BASE_PORT=0 for any free ports)',
    );
  }
  return ports;
}

export function tcpOpen(host, port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
