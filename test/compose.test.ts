import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHash, verifyPassword } from '@sessiongate/auth-service';
import { parseRoutes } from 'sessiongate';
import { BIN, ROOT, assertBuilt } from './support/process.js';

// No Docker engine runs here: docker-compose.yml is checked by a real compose
// implementation when one is installed (`docker compose` or `docker-compose`: `config -q`
// needs no engine), else against the compose-spec JSON schema, plus what no schema knows:
// healthchecks behind every depends_on condition, Dockerfiles that hold what is run,
// compose routes in step with routes.yaml, and the setup script run for real.

const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');
const tmp = mkdtempSync(path.join(tmpdir(), 'sessiongate-compose-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Service = {
  image?: string;
  build?: { context: string; dockerfile?: string; target?: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: { type: string; source: string; target: string; read_only?: boolean }[];
  ports?: string[];
  restart?: string;
};
const compose = parseYaml(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;

interface Validator {
  name: string;
  /** null when valid, else what the validator said. */
  check(file: string): string | null;
}

function cliValidator(name: string, command: string, prefix: string[]): Validator | null {
  const probe = spawnSync(command, [...prefix, 'version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return null;
  return {
    name: `${name} (${probe.stdout.trim().split('\n')[0]})`,
    check(file) {
      const r = spawnSync(command, [...prefix, '--project-directory', ROOT, '-f', file, 'config', '-q'], { cwd: ROOT, encoding: 'utf8' });
      return r.status === 0 ? null : `${r.stderr}${r.stdout}`.trim();
    },
  };
}

/** The compose-spec JSON schema (kept in test/fixtures), checked with ajv. */
async function schemaValidator(): Promise<Validator | null> {
  const schemaFile = path.join(ROOT, 'test/fixtures/compose-spec.schema.json');
  const { Ajv } = (await import('ajv')) as unknown as { Ajv: new (o: object) => { compile(s: object): ((d: unknown) => boolean) & { errors?: unknown[] } } };
  const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<string, unknown>;
  delete schema.$schema; // draft-07 under an id ajv does not know by that spelling
  const validate = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true }).compile(schema);
  return {
    name: `compose-spec JSON schema (${path.relative(ROOT, schemaFile)})`,
    check(file) {
      return validate(parseYaml(readFileSync(file, 'utf8'), { merge: true })) ? null : JSON.stringify(validate.errors, null, 1);
    },
  };
}

async function validators(): Promise<Validator[]> {
  return [cliValidator('docker compose', 'docker', ['compose']), cliValidator('docker-compose', 'docker-compose', []), await schemaValidator()].filter(
    (v): v is Validator => v !== null,
  );
}

/** A Dockerfile's stages: FROM line, name, and the instructions under it. */
function stages(dockerfile: string): { from: string; name: string | undefined; lines: string[] }[] {
  const out: { from: string; name: string | undefined; lines: string[] }[] = [];
  const text = readFileSync(dockerfile, 'utf8').replace(/\\\n/g, ' ');
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ from: from[1]!, name: from[2], lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

describe('docker-compose.yml', () => {
  it('is valid for a real compose implementation, else for the compose-spec schema', async (ctx) => {
    const found = await validators();
    if (found.length === 0) {
      ctx.skip('no compose implementation (`docker compose`, `docker-compose`) and no compose-spec schema in test/fixtures');
    }
    // a broken copy must be refused, so a pass means something
    const broken = path.join(tmp, 'broken-compose.yml');
    writeFileSync(broken, readFileSync(COMPOSE_FILE, 'utf8').replace('condition: service_healthy', 'condition: service_happy'));
    for (const v of found) {
      expect(v.check(COMPOSE_FILE), v.name).toBeNull();
      expect(v.check(broken), `${v.name} accepted a wrong depends_on condition`).toMatch(/service_happy|condition|allowed values/);
    }
  });

  it('runs Redis, the auth service, the gateway and both example upstreams, each with a healthcheck', () => {
    expect(Object.keys(services).sort()).toEqual(['auth', 'gateway', 'node-upstream', 'python-upstream', 'redis', 'setup']);
    for (const [name, s] of Object.entries(services)) {
      if (name === 'setup') {
        expect(s.restart, 'the setup one-shot must not restart').toBe('no');
        continue;
      }
      expect(s.healthcheck?.test.length, `${name} has no healthcheck`).toBeGreaterThan(0);
      expect(s.restart).toBe('unless-stopped');
    }
    // the healthchecks probe the port the service is told to use
    for (const [name, port] of [
      ['auth', services.auth!.environment!.METRICS_PORT],
      ['gateway', services.gateway!.environment!.METRICS_PORT],
      ['node-upstream', services['node-upstream']!.environment!.PORT],
      ['python-upstream', services['python-upstream']!.environment!.PORT],
    ] as const) {
      expect(services[name]!.healthcheck!.test.join(' '), name).toContain(`127.0.0.1:${port}/`);
    }
    expect(services.gateway!.ports).toContain('8080:8080');
    // metrics are never published to the world
    expect(services.gateway!.ports!.filter((p) => p.endsWith(':9091'))).toEqual(['127.0.0.1:9091:9091']);
    expect(services.gateway!.command).toEqual(['gateway']);
    expect(services.auth!.command).toEqual(['auth']);
  });

  it('points node-upstream at the gateway’s session data endpoint, which is never published', () => {
    const dataPort = services.gateway!.environment!.SESSION_DATA_PORT;
    expect(dataPort).toMatch(/^\d+$/);
    expect([services.gateway!.environment!.PORT, services.gateway!.environment!.METRICS_PORT]).not.toContain(dataPort);
    const url = new URL(services['node-upstream']!.environment!.SESSIONGATE_DATA_URL!);
    expect({ host: url.hostname, port: url.port, path: url.pathname }).toEqual({ host: 'gateway', port: dataPort, path: '/_sessiongate/session-data' });
    // no host port leads to it: "8081", "8081:8081", "127.0.0.1:x:8081" all name it last
    expect((services.gateway!.ports ?? []).filter((p) => p.split(':').at(-1) === dataPort)).toEqual([]);
  });

  it('waits on conditions that can be met: healthy services, a finished setup', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(services[dep], `${name} depends on unknown ${dep}`).toBeDefined();
        if (condition === 'service_healthy') expect(services[dep]!.healthcheck, `${name} waits for ${dep} to be healthy`).toBeDefined();
        else expect(condition).toBe('service_completed_successfully');
        if (condition === 'service_completed_successfully') expect(services[dep]!.restart).toBe('no');
      }
    }
    expect(services.auth!.depends_on).toMatchObject({ redis: { condition: 'service_healthy' }, setup: { condition: 'service_completed_successfully' } });
    expect(services.gateway!.depends_on).toMatchObject({
      redis: { condition: 'service_healthy' },
      auth: { condition: 'service_healthy' },
      'node-upstream': { condition: 'service_healthy' },
      'python-upstream': { condition: 'service_healthy' },
    });
  });

  it('gives every service the same keys, settings that name real files, and plain http only on purpose', () => {
    const keyPaths = new Set<string>();
    for (const [name, s] of Object.entries(services)) {
      const env = s.environment ?? {};
      for (const v of ['X_SESSION_KEYS', 'X_SESSION_KEYS_FILE']) if (env[v]) keyPaths.add(env[v]!);
      if (env.REDIS_URL) expect(env.REDIS_URL, name).toBe('redis://redis:6379');
      if (env.X_SESSION_KEYS || env.X_SESSION_KEYS_FILE) {
        // only the auth service may change users; nothing else writes the keys
        const state = s.volumes?.find((m) => m.source === 'state' && m.target === '/var/lib/sessiongate');
        expect(state, `${name} mounts the state`).toBeDefined();
        expect(Boolean(state!.read_only), `${name} mounts the state read-only`).toBe(name !== 'auth');
      }
      for (const m of s.volumes ?? []) {
        if (m.type === 'bind') expect(existsSync(path.resolve(ROOT, m.source)), `${name}: ${m.source}`).toBe(true);
        else expect(Object.keys(compose.volumes)).toContain(m.source);
      }
    }
    expect([...keyPaths]).toEqual(['/var/lib/sessiongate/x-session-keys.json']);
    expect(services.gateway!.environment!.COOKIE_SECURE).toBe('false');
    expect(services.auth!.environment!.COOKIE_SECURE).toBe('false');
  });

  it('builds from multi-stage Dockerfiles with production dependencies only, run as a non-root user', () => {
    const dockerfile = path.join(ROOT, 'Dockerfile');
    const all = stages(dockerfile);
    expect(all.length).toBeGreaterThanOrEqual(2);
    const runtime = all.at(-1)!;
    expect(runtime.name).toBe('runtime');
    for (const s of Object.values(services)) if (s.build?.context === '.') expect(s.build.target).toBe(runtime.name);
    const run = runtime.lines.filter((l) => /^RUN\s/i.test(l)).join('\n');
    expect(run).toMatch(/npm ci --omit=dev/);
    expect(run).not.toMatch(/npm (ci|install)(?! --omit=dev)/);
    expect(runtime.lines.filter((l) => /^USER\s/i.test(l)).at(-1)).toMatch(/^USER\s+(?!root\b|0\b)\S+/i);
    // compiled code and manifests come from the build stage's /stage: no toolchain, no sources
    expect(runtime.lines).toContain('COPY --from=build /stage/manifests ./');
    expect(runtime.lines).toContain('COPY --from=build /stage/code ./');
    expect(runtime.lines.findIndex((l) => l.includes('/stage/manifests'))).toBeLessThan(runtime.lines.findIndex((l) => /npm ci --omit=dev/.test(l)));

    // run the build stage's staging step here, on this checkout (built by `npm test`)
    assertBuilt();
    const staging = all[0]!.lines.find((l) => /^RUN\s/i.test(l) && l.includes('/stage/manifests'))!;
    const stage = path.join(tmp, 'stage');
    const r = spawnSync('sh', ['-c', staging.replace(/^RUN\s+/i, '').replaceAll('/stage', stage)], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const workspaces = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;
    for (const ws of ['.', ...workspaces]) expect(existsSync(path.join(stage, 'manifests', ws, 'package.json')), ws).toBe(true);
    expect(existsSync(path.join(stage, 'manifests/package-lock.json'))).toBe(true);
    // what compose runs is in the image: the CLI (and so gateway and auth) and the examples' files
    const ran = Object.values(services)
      .filter((s) => s.build?.context === '.')
      .flatMap((s) => s.entrypoint ?? [])
      .filter((a) => /\.(mjs|sh|js)$/.test(a))
      .map((a) => a.replace(/^\/app\//, ''));
    expect(ran.sort()).toEqual(['examples/compose/init-demo.sh', 'examples/node-upstream/server.mjs']);
    const entrypoint = JSON.parse(runtime.lines.find((l) => /^ENTRYPOINT\s/i.test(l))!.replace(/^ENTRYPOINT\s+/i, '')) as string[];
    const script = entrypoint.find((a) => a.endsWith('.js'));
    expect(script, 'the entrypoint runs a script').toBeDefined();
    for (const f of [...ran, script!, 'gateway/dist/cli/main.js', 'auth-service/dist/cli.js']) {
      expect(existsSync(path.join(stage, 'code', f)), `${f} is in the image`).toBe(true);
    }
    const staged = spawnSync('find', [path.join(stage, 'code'), '-name', '*.ts', '-not', '-name', '*.d.ts'], { encoding: 'utf8' }).stdout.trim();
    expect(staged, 'TypeScript sources in the image').toBe('');

    const py = stages(path.join(ROOT, services['python-upstream']!.build!.context, 'Dockerfile'));
    expect(py.at(-1)!.lines.filter((l) => /^USER\s/i.test(l)).at(-1)).toMatch(/^USER\s+(?!root\b|0\b)\S+/i);
    expect(py.at(-1)!.lines.join('\n')).toMatch(/COPY server\.py/);
    // stdlib only: nothing is installed
    expect(py.at(-1)!.lines.join('\n')).not.toMatch(/pip install/);
  });

  it('routes like routes.yaml, with the compose services as upstream hosts', () => {
    const load = (file: string) => {
      const r = parseRoutes(readFileSync(file, 'utf8'), file);
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      return r.routes.routes;
    };
    const routesFile = services.gateway!.environment!.SESSIONGATE_ROUTES!;
    const mount = services.gateway!.volumes!.find((m) => m.type === 'bind' && routesFile.startsWith(`${m.target}/`))!;
    const inCompose = load(path.resolve(ROOT, mount.source, path.relative(mount.target, routesFile)));
    const local = load(path.join(ROOT, 'routes.yaml'));
    const portOf = (name: string) => services[name]!.environment!.PORT;
    expect(
      inCompose.map((r) => {
        const u = new URL(r.upstream ?? 'http://(none)');
        // the upstream is a compose service, on the port that service listens on
        expect(portOf(u.hostname), r.upstream ?? '(none)').toBe(u.port);
        return { ...r, upstream: `http://127.0.0.1:${u.port}` };
      }),
    ).toEqual(local.map((r) => ({ ...r })));
  });
});

describe('examples/compose/init-demo.sh (the setup one-shot)', () => {
  it('creates private keys and demo users once, and prints the same passwords on every start', async () => {
    assertBuilt();
    const state = path.join(tmp, 'state');
    const run = () =>
      spawnSync('sh', [path.join(ROOT, 'examples/compose/init-demo.sh')], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: process.env.HOME, SESSIONGATE_STATE_DIR: state, SESSIONGATE_BIN: BIN },
      });
    spawnSync('mkdir', ['-p', state]);
    const first = run();
    expect(first.status, first.stderr).toBe(0);
    for (const f of ['x-session-keys.json', 'users.yaml', 'demo-passwords.txt']) {
      expect(statSync(path.join(state, f)).mode & 0o777, f).toBe(0o600);
    }
    const keys = JSON.parse(readFileSync(path.join(state, 'x-session-keys.json'), 'utf8')) as { keys: { kty: string; alg: string; k: string }[] };
    expect(keys.keys[0]).toMatchObject({ kty: 'oct', alg: 'HS256' });
    expect(first.stdout).not.toContain(keys.keys[0]!.k);
    const users = parseYaml(readFileSync(path.join(state, 'users.yaml'), 'utf8')) as { users: Record<string, { roles: string[] }> };
    expect(Object.fromEntries(Object.entries(users.users).map(([n, u]) => [n, u.roles]))).toEqual({
      alice: ['user'],
      bob: ['user', 'admin'],
      dave: ['analyst', 'billing'],
    });
    const printed = first.stdout.match(/^ {2}(alice|bob|dave) +\S+ +roles .+$/gm);
    expect(printed).toHaveLength(3);

    const second = run();
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout.match(/^ {2}(alice|bob|dave) +\S+ +roles .+$/gm)).toEqual(printed);
    expect(JSON.parse(readFileSync(path.join(state, 'x-session-keys.json'), 'utf8'))).toEqual(keys);
    // the passwords it printed are the ones the users file holds
    const hashes = parseYaml(readFileSync(path.join(state, 'users.yaml'), 'utf8')) as { users: Record<string, { password: string }> };
    for (const line of printed!) {
      const [name, password] = line.trim().split(/\s+/) as [string, string];
      const hash = parseHash(hashes.users[name]!.password);
      if (typeof hash === 'string') throw new Error(hash);
      expect(await verifyPassword(password, hash), name).toBe(true);
    }
  }, 30_000);
});
