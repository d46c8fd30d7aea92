import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './redis-server.js';

/** An executable by absolute path, or found on PATH; null when there is none. */
export function findBinary(name: string, override?: string): string | null {
  const candidates = override ? [override] : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not there: the next one
    }
  }
  return null;
}

/** Debian's `prometheus` package, or PROMETHEUS_BIN. */
export const PROMETHEUS_BIN = findBinary('prometheus', process.env.PROMETHEUS_BIN);
export const PROMTOOL_BIN = findBinary('promtool', process.env.PROMTOOL_BIN);

export interface ScrapeTarget {
  readonly job: string;
  /** host:port of a /metrics endpoint. */
  readonly target: string;
}

export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

export interface PromRule {
  readonly name: string;
  readonly query: string;
  readonly health: string;
  readonly lastError?: string;
  readonly lastEvaluation: string;
  readonly type: string;
}

export interface PrometheusServer {
  readonly url: string;
  /** An instant query; throws with Prometheus's error text when it refuses the expression. */
  query(expr: string): Promise<PromSample[]>;
  /** The label sets of the series matching a selector (the last 10 minutes). */
  series(selector: string): Promise<Record<string, string>[]>;
  /** Every metric name stored. */
  metricNames(): Promise<string[]>;
  /** The alerting and recording rules loaded, with their health. */
  rules(): Promise<PromRule[]>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  targets: readonly ScrapeTarget[];
  ruleFiles?: readonly string[];
  /** @default 1 (seconds, for both scrape and rule evaluation) */
  intervalSeconds?: number;
}

async function api<T>(base: string, p: string, params: Record<string, string | string[]>): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) q.append(k, one);
  const res = await fetch(`${base}${p}?${q}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${p} ${JSON.stringify(params)}: ${body.error ?? res.status}`);
  return body.data;
}

/**
 * A private Prometheus on a free port, with a config and storage of its own in a temporary
 * directory, scraping the given targets. Stopped (and its directory removed) by stop().
 */
export async function startPrometheus(o: PrometheusOptions): Promise<PrometheusServer> {
  if (!PROMETHEUS_BIN) throw new Error('prometheus is not installed');
  const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-prometheus-'));
  const port = await freePort();
  const interval = `${o.intervalSeconds ?? 1}s`;
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(o.ruleFiles?.length ? ['rule_files:', ...o.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
    'scrape_configs:',
    ...o.targets.flatMap((t) => [`  - job_name: ${JSON.stringify(t.job)}`, '    static_configs:', `      - targets: [${JSON.stringify(t.target)}]`]),
    '',
  ].join('\n');
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForPort(port, '127.0.0.1', 15_000);
    // listening comes before the TSDB is open: wait until it says it is ready
    for (let i = 0; ; i++) {
      const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
      if (ready) break;
      if (i > 300 || child.exitCode !== null) throw new Error(`prometheus did not become ready: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    async query(expr) {
      const data = await api<{ resultType: string; result: PromSample[] | [number, string] }>(url, '/api/v1/query', { query: expr });
      if (data.resultType !== 'vector') throw new Error(`${expr}: a ${data.resultType}, not an instant vector`);
      return data.result as PromSample[];
    },
    series(selector) {
      const now = Date.now() / 1000;
      return api<Record<string, string>[]>(url, '/api/v1/series', { 'match[]': selector, start: String(now - 600), end: String(now) });
    },
    metricNames() {
      return api<string[]>(url, '/api/v1/label/__name__/values', {});
    },
    async rules() {
      const data = await api<{ groups: { rules: PromRule[] }[] }>(url, '/api/v1/rules', {});
      return data.groups.flatMap((g) => g.rules);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs promtool to completion. */
export function promtool(args: string[], cwd: string): { code: number | null; output: string } {
  if (!PROMTOOL_BIN) throw new Error('promtool is not installed');
  const r = spawnSync(PROMTOOL_BIN, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}
