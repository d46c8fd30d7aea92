import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { renderTemplateFile, startEdgeProcess, type EdgeProxy } from './edge-proxy.js';
import { findBinary } from './prometheus.js';
import { freePort } from './redis-server.js';

// Debian's nginx (nginx-light has auth_request), run in the foreground on a free port with
// a prefix directory of its own. The site config is the shipped deploy/forward-auth/nginx.conf
// rendered from its template; the main config around it is the harness's: pid, logs and
// temporary files in the prefix, and `user root;` when run as root (workers would otherwise
// drop to nobody, who cannot write in the private prefix).

/** nginx on PATH, in /usr/sbin, or NGINX_BIN. */
export const NGINX_BIN = findBinary('nginx', process.env.NGINX_BIN) ?? findBinary('nginx', '/usr/sbin/nginx');

/** Why the nginx tests cannot run here, or null. */
export function nginxUnavailable(): string | null {
  if (!NGINX_BIN) return 'nginx is not installed (apt-get install nginx-light)';
  const v = spawnSync(NGINX_BIN, ['-V'], { encoding: 'utf8' });
  if (!`${v.stdout}${v.stderr}`.includes('http_auth_request_module')) return `${NGINX_BIN} is built without the auth_request module`;
  return null;
}

/** `nginx -v`, e.g. "nginx/1.22.1". */
export function nginxVersion(): string {
  const v = spawnSync(NGINX_BIN ?? 'nginx', ['-v'], { encoding: 'utf8' });
  return /nginx\/\S+/.exec(`${v.stdout}${v.stderr}`)?.[0] ?? '?';
}

/** The template's placeholders as the shipped file fills them. */
export const NGINX_SHIPPED_VALUES = { LISTEN: '80', SESSIONGATE: '127.0.0.1:8080', APP: '127.0.0.1:9000' } as const;

export interface NginxOptions {
  /** host:port of the sessiongate endpoint. */
  sessiongate: string;
  /** host:port of the protected application. */
  app: string;
  /** A template file of test/fixtures/forward-auth. @default 'nginx.conf.template' */
  template?: string;
  /** A site config to run instead of a template (the benchmark's plain proxy). */
  site?: (listen: string) => string;
}

function mainConfig(dir: string, site: string): string {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return [
    'daemon off;',
    'worker_processes 1;',
    ...(asRoot ? ['user root;'] : []),
    `pid ${path.join(dir, 'nginx.pid')};`,
    'error_log stderr warn;',
    'events { worker_connections 1024; }',
    'http {',
    `    access_log off;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${path.join(dir, 'tmp', t)};`),
    `    include ${site};`,
    '}',
    '',
  ].join('\n');
}

/** Renders the config and checks it with `nginx -t`; returns the prefix directory and files. */
function prepare(o: NginxOptions, listen: string): { dir: string; main: string } {
  if (!NGINX_BIN) throw new Error('nginx is not installed');
  const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-nginx-'));
  mkdirSync(path.join(dir, 'tmp'));
  const site = path.join(dir, 'site.conf');
  writeFileSync(site, o.site ? o.site(listen) : renderTemplateFile(o.template ?? 'nginx.conf.template', { LISTEN: listen, SESSIONGATE: o.sessiongate, APP: o.app }));
  const main = path.join(dir, 'nginx.conf');
  writeFileSync(main, mainConfig(dir, site));
  return { dir, main };
}

/** `nginx -t` on the rendered config: null when it passes, else nginx's complaint. */
export function nginxConfigProblem(o: NginxOptions): string | null {
  const { dir, main } = prepare(o, '127.0.0.1:1');
  try {
    const r = spawnSync(NGINX_BIN!, ['-t', '-q', '-p', `${dir}/`, '-c', main, '-e', 'stderr'], { encoding: 'utf8' });
    return r.status === 0 ? null : `${r.stdout}${r.stderr}`.trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A private nginx running the shipped site config (or `o.site`) on a free port. */
export async function startNginx(o: NginxOptions): Promise<EdgeProxy> {
  const port = await freePort();
  const { dir, main } = prepare(o, `127.0.0.1:${port}`);
  return startEdgeProcess('nginx', NGINX_BIN!, ['-p', `${dir}/`, '-c', main, '-e', 'stderr'], {
    port,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  });
}
