import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { renderTemplateFile, startEdgeProcess, type EdgeProxy } from './edge-proxy.js';
import { findBinary } from './prometheus.js';
import { freePort } from './redis-server.js';

// Caddy (Debian's /usr/bin/caddy), run in the foreground on a free port. The site is the
// shipped deploy/forward-auth/Caddyfile rendered from its template; the harness puts a
// global options block in front (no admin endpoint: parallel runs would fight over
// localhost:2019) and keeps Caddy's data and config directories in a temporary directory.

/** caddy on PATH, or CADDY_BIN. */
export const CADDY_BIN = findBinary('caddy', process.env.CADDY_BIN);

/** Why the Caddy tests cannot run here, or null. */
export function caddyUnavailable(): string | null {
  return CADDY_BIN ? null : 'caddy is not installed (apt-get install caddy)';
}

/** `caddy version`, e.g. "v2.6.2". */
export function caddyVersion(): string {
  const v = spawnSync(CADDY_BIN ?? 'caddy', ['version'], { encoding: 'utf8' });
  return v.stdout.trim().split(/\s+/)[0] ?? '?';
}

/** The template's placeholders as the shipped file fills them. */
export const CADDY_SHIPPED_VALUES = { SITE: 'app.example.com', SESSIONGATE: '127.0.0.1:8080', APP: '127.0.0.1:9000' } as const;

export interface CaddyOptions {
  /** host:port of the sessiongate endpoint. */
  sessiongate: string;
  /** host:port of the protected application. */
  app: string;
}

const GLOBAL_OPTIONS = '{\n\tadmin off\n}\n\n';

function prepare(o: CaddyOptions, site: string): { dir: string; file: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-caddy-'));
  const file = path.join(dir, 'Caddyfile');
  writeFileSync(file, GLOBAL_OPTIONS + renderTemplateFile('Caddyfile.template', { SITE: site, SESSIONGATE: o.sessiongate, APP: o.app }));
  const env = { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: path.join(dir, 'data'), XDG_CONFIG_HOME: path.join(dir, 'config') };
  return { dir, file, env };
}

/** `caddy validate` on the rendered config: null when it passes, else Caddy's complaint. */
export function caddyConfigProblem(o: CaddyOptions): string | null {
  const { dir, file, env } = prepare(o, 'http://127.0.0.1:1');
  try {
    const r = spawnSync(CADDY_BIN!, ['validate', '--config', file, '--adapter', 'caddyfile'], { encoding: 'utf8', env });
    return r.status === 0 ? null : `${r.stdout}${r.stderr}`.trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A private Caddy running the shipped Caddyfile on a free port (plain HTTP). */
export async function startCaddy(o: CaddyOptions): Promise<EdgeProxy> {
  if (!CADDY_BIN) throw new Error('caddy is not installed');
  const port = await freePort();
  const { dir, file, env } = prepare(o, `http://127.0.0.1:${port}`);
  return startEdgeProcess('caddy', CADDY_BIN, ['run', '--config', file, '--adapter', 'caddyfile'], {
    port,
    env,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  });
}
