import http from 'node:http';
import { startService, type Service } from './process.js';
import { freePort } from './redis-server.js';

/** A `sessiongate gateway --workers N` process: the primary and its workers. */
export interface WorkerGateway {
  readonly svc: Service;
  readonly port: number;
  readonly metricsPort: number;
  /** The primary's pid. */
  readonly pid: number;
  /** Every JSON log line printed so far (primary and workers). */
  lines(): Record<string, unknown>[];
  /** Pids of the workers that reported ready, newest last. */
  workerPids(): number[];
  metrics(): Promise<string>;
  close(): Promise<void>;
}

export async function startWorkerGateway(workers: number, env: NodeJS.ProcessEnv): Promise<WorkerGateway> {
  const port = await freePort();
  const metricsPort = await freePort();
  const svc = startService(['gateway', '--workers', String(workers)], {
    HOST: '127.0.0.1',
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    SHUTDOWN_TIMEOUT: '5s',
    COOKIE_SECURE: 'false',
    ...env,
  });
  await svc.waitFor(/sessiongate gateway workers ready/, 30_000);
  const lines = () =>
    svc
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  return {
    svc,
    port,
    metricsPort,
    pid: svc.child.pid!,
    lines,
    workerPids: () => lines().filter((l) => l.msg === 'worker ready').map((l) => l.pid as number),
    async metrics() {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      return res.text();
    },
    close: () => svc.stop(),
  };
}

/** A GET on a connection of its own (no keep-alive): the cluster hands each one to a worker in turn. */
export function freshGet(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers: { connection: 'close', ...headers }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample in a Prometheus text exposition (NaN when absent). */
export function sample(text: string, name: string, labels = ''): number {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${esc(name)}${labels ? `\\{${esc(labels)}\\}` : ''} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** The sum of every sample of a metric, whatever its labels. */
export function sampleSum(text: string, name: string): number {
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) n += Number(m[1]);
  return n;
}
