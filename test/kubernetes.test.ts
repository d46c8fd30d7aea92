import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Registry } from 'prom-client';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { buildOpsApp } from '@sessiongate/service-kit';
import { DEFAULT_AUTH_METRICS_PORT, DEFAULT_AUTH_PORT } from '@sessiongate/auth-service';
import { parseUsersFile } from '@sessiongate/auth-service';
import { DEFAULT_GATEWAY_METRICS_PORT, DEFAULT_GATEWAY_PORT } from 'sessiongate';
import { parseRoutes } from 'sessiongate';
import { findBinary } from './support/prometheus.js';
import { ROOT, assertBuilt, runCli } from './support/process.js';

// The kustomize base and the Sentinel overlay, rendered by kubectl and read against the
// code: probes hit paths the ops listener serves on the port the process listens on, Services
// reach named container ports, every variable set is one the CLI reads, every ConfigMap and
// Secret key referenced exists, and the network policies let only whom they should through.

const KUBECTL = findBinary('kubectl', process.env.KUBECTL_BIN);
const MISSING = KUBECTL ? null : 'kubectl is not installed (it renders the kustomizations)';

type Labels = Record<string, string>;
interface Port {
  name?: string;
  containerPort: number;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  args?: string[];
  ports?: Port[];
  env?: EnvVar[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  configMap?: { name: string; items?: { key: string; path: string }[] };
}
interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
}
interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Labels };
  // the shapes differ by kind; each check reads what it needs
  spec?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

function render(dir: string): Resource[] {
  const r = spawnSync(KUBECTL!, ['kustomize', path.join(ROOT, dir)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Resource);
}

const matches = (selector: Labels, labels: Labels | undefined) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** The variables a CLI command documents in its --help (the names it reads). */
async function variablesOf(command: 'gateway' | 'auth'): Promise<Set<string>> {
  const r = await runCli([command, '--help']);
  expect(r.code).toBe(0);
  return new Set(r.stdout.match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\b(?:HOST|PORT)\b/g));
}

const DEFAULTS = {
  gateway: { port: DEFAULT_GATEWAY_PORT, metricsPort: DEFAULT_GATEWAY_METRICS_PORT },
  auth: { port: DEFAULT_AUTH_PORT, metricsPort: DEFAULT_AUTH_METRICS_PORT },
};

let ops: Awaited<ReturnType<typeof buildOpsApp>> | undefined;
const known: Partial<Record<'gateway' | 'auth', Set<string>>> = {};

beforeAll(async () => {
  if (MISSING) return;
  assertBuilt();
  known.gateway = await variablesOf('gateway');
  known.auth = await variablesOf('auth');
  // the ops listener both services run (service-kit), to ask which paths it serves
  ops = await buildOpsApp(pino({ level: 'silent' }), { registry: new Registry(), checks: [], draining: () => false });
});

afterAll(async () => {
  await ops?.close();
});

describe.each([['deploy/k8s/base'], ['deploy/k8s/overlays/sentinel']])('%s', (dir) => {
  let docs: Resource[] = [];
  const all = (kind: string) => docs.filter((d) => d.kind === kind);
  const one = (kind: string, name: string) => {
    const r = docs.find((d) => d.kind === kind && d.metadata.name === name);
    if (!r) throw new Error(`no ${kind} ${name}`);
    return r;
  };
  const deployments = () => all('Deployment');
  const containerOf = (d: Resource) => (d.spec.template.spec as PodSpec).containers[0]!;
  const commandOf = (d: Resource) => (containerOf(d).args?.[0] ?? 'gateway') as 'gateway' | 'auth';

  beforeAll(() => {
    if (!MISSING) docs = render(dir);
  });

  it('renders the gateway and the auth service with everything around them', (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    const kinds = docs.map((d) => `${d.kind}/${d.metadata.name}`);
    for (const k of [
      'Deployment/sessiongate-gateway',
      'Deployment/sessiongate-auth',
      'Service/sessiongate',
      'Service/sessiongate-auth',
      'PodDisruptionBudget/sessiongate-gateway',
      'PodDisruptionBudget/sessiongate-auth',
      'HorizontalPodAutoscaler/sessiongate-gateway',
      'HorizontalPodAutoscaler/sessiongate-auth',
      'ServiceMonitor/sessiongate',
      'Secret/sessiongate-x-session-keys',
      'Secret/sessiongate-users',
      'Secret/sessiongate-redis',
    ]) {
      expect(kinds).toContain(k);
    }
    expect(one('ServiceMonitor', 'sessiongate').apiVersion).toBe('monitoring.coreos.com/v1');
    expect(kinds.some((k) => k.startsWith('ConfigMap/sessiongate-routes'))).toBe(true);
    for (const d of deployments()) {
      const c = containerOf(d);
      expect(c.livenessProbe, d.metadata.name).toBeDefined();
      expect(c.readinessProbe, d.metadata.name).toBeDefined();
      expect((c as { resources?: { requests?: object; limits?: object } }).resources?.requests, d.metadata.name).toBeDefined();
      expect((c as { resources?: { requests?: object; limits?: object } }).resources?.limits, d.metadata.name).toBeDefined();
    }
  });

  it('probes ask the ops listener for paths it serves, on the port METRICS_PORT sets', async (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    expect(deployments().length).toBe(2);
    for (const d of deployments()) {
      const c = containerOf(d);
      const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
      const defaults = DEFAULTS[commandOf(d)];
      const metricsPort = Number(env.get('METRICS_PORT') ?? defaults.metricsPort);
      const publicPort = Number(env.get('PORT') ?? defaults.port);
      const byName = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
      for (const [kind, probe, expected] of [
        ['liveness', c.livenessProbe, '/healthz'],
        ['readiness', c.readinessProbe, '/readyz'],
      ] as const) {
        const get = probe?.httpGet;
        expect(get, `${d.metadata.name} ${kind}`).toBeDefined();
        expect(get!.path).toBe(expected);
        const port = typeof get!.port === 'number' ? get!.port : byName.get(get!.port);
        expect(port, `${d.metadata.name} ${kind} port`).toBe(metricsPort);
        const res = await ops!.inject({ url: get!.path });
        expect(res.statusCode, `${get!.path} on the ops listener`).toBe(200);
      }
      expect(byName.get('http')).toBe(publicPort);
      expect(byName.get('metrics')).toBe(metricsPort);
    }
  });

  it('Services reach container ports their selector pods declare', (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    for (const svc of all('Service')) {
      const pods = deployments().filter((d) => matches(svc.spec.selector, d.spec.template.metadata.labels));
      expect(pods.length, `pods behind Service ${svc.metadata.name}`).toBe(1);
      const ports = containerOf(pods[0]!).ports ?? [];
      for (const p of svc.spec.ports as { name: string; targetPort: string | number }[]) {
        const hit = ports.find((c) => (typeof p.targetPort === 'number' ? c.containerPort === p.targetPort : c.name === p.targetPort));
        expect(hit, `${svc.metadata.name} port ${p.name} → ${p.targetPort}`).toBeDefined();
      }
    }
    // the ServiceMonitor scrapes a port both Services have
    const sm = one('ServiceMonitor', 'sessiongate');
    const scraped = all('Service').filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
    expect(scraped.map((s) => s.metadata.name).sort()).toEqual(['sessiongate', 'sessiongate-auth']);
    for (const s of scraped) expect((s.spec.ports as { name: string }[]).map((p) => p.name)).toContain(sm.spec.endpoints[0].port);
    // budgets and autoscalers point at the Deployments
    for (const pdb of all('PodDisruptionBudget')) {
      expect(deployments().filter((d) => matches(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels)).length).toBe(1);
    }
    for (const hpa of all('HorizontalPodAutoscaler')) one('Deployment', hpa.spec.scaleTargetRef.name);
  });

  it('sets only variables the CLI reads', (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    for (const d of deployments()) {
      const names = (containerOf(d).env ?? []).map((e) => e.name);
      expect(names.length).toBeGreaterThan(3);
      const unknown = names.filter((n) => !known[commandOf(d)]!.has(n));
      expect(unknown, `${d.metadata.name} sets variables \`sessiongate ${commandOf(d)}\` does not read`).toEqual([]);
      expect(containerOf(d).envFrom ?? []).toEqual([]);
    }
  });

  it('references ConfigMap and Secret keys that exist, and file settings point at mounted files', (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    const keysOf = (kind: 'ConfigMap' | 'Secret', name: string) => {
      const r = one(kind, name);
      return new Set([...Object.keys(r.data ?? {}), ...Object.keys(r.stringData ?? {})]);
    };
    for (const d of deployments()) {
      const pod = d.spec.template.spec as PodSpec;
      const c = containerOf(d);
      const files = new Map<string, string>();
      for (const v of pod.volumes ?? []) {
        const src = v.secret ? { kind: 'Secret' as const, name: v.secret.secretName, items: v.secret.items } : v.configMap ? { kind: 'ConfigMap' as const, name: v.configMap.name, items: v.configMap.items } : null;
        expect(src, `volume ${v.name}`).not.toBeNull();
        const keys = keysOf(src!.kind, src!.name);
        const mount = c.volumeMounts?.find((m) => m.name === v.name);
        expect(mount, `volume ${v.name} is mounted`).toBeDefined();
        for (const item of src!.items ?? [...keys].map((key) => ({ key, path: key }))) {
          expect(keys.has(item.key), `${src!.kind} ${src!.name} has ${item.key}`).toBe(true);
          files.set(path.posix.join(mount!.mountPath, item.path), `${src!.kind}/${src!.name}:${item.key}`);
        }
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (ref) expect(keysOf(e.valueFrom?.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name).has(ref.key), `${e.name} → ${ref.name}:${ref.key}`).toBe(true);
        if (e.value?.startsWith('/')) expect(files.has(e.value), `${d.metadata.name} ${e.name}=${e.value} is a mounted file`).toBe(true);
      }
    }
  });

  it('ships a routes file the gateway accepts, whose auth route is the auth Service', (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    const cm = all('ConfigMap').find((c) => c.metadata.name.startsWith('sessiongate-routes'))!;
    const parsed = parseRoutes(cm.data!['routes.yaml']!, 'routes.yaml');
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    const auth = parsed.routes.routes.find((r) => r.name === 'auth');
    const url = new URL(auth!.upstream!);
    const svc = one('Service', url.hostname);
    expect((svc.spec.ports as { port: number }[]).map((p) => p.port)).toContain(Number(url.port));
    expect(matches(svc.spec.selector, one('Deployment', 'sessiongate-auth').spec.template.metadata.labels)).toBe(true);
    // the users placeholder is a valid (empty) users file
    expect(parseUsersFile(one('Secret', 'sessiongate-users').stringData!['users.yaml']!).ok).toBe(true);
  });

  it('lets only the gateway reach upstreams and the auth service, and only the gateway and the auth service reach Redis', (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    const gatewayPod = one('Deployment', 'sessiongate-gateway').spec.template.metadata.labels as Labels;
    const authPod = one('Deployment', 'sessiongate-auth').spec.template.metadata.labels as Labels;
    const redisPod: Labels = { 'app.kubernetes.io/name': 'redis' };
    const upstreamPod: Labels = { 'sessiongate.io/upstream': 'true' };
    /** Pod label sets (of those above) that the policies protecting `target` let in. */
    const admitted = (target: Labels) => {
      const policies = all('NetworkPolicy').filter((p) => matches(p.spec.podSelector.matchLabels ?? {}, target));
      expect(policies.length, `a policy protects ${JSON.stringify(target)}`).toBeGreaterThan(0);
      const rules = policies.flatMap((p) => (p.spec.ingress ?? []) as { from?: { podSelector?: { matchLabels: Labels } }[] }[]);
      return {
        open: rules.some((r) => !r.from),
        from: (pod: Labels) => rules.some((r) => r.from?.some((f) => f.podSelector && matches(f.podSelector.matchLabels, pod))),
      };
    };
    const upstreams = admitted(upstreamPod);
    expect(upstreams.open).toBe(false);
    expect([upstreams.from(gatewayPod), upstreams.from(authPod), upstreams.from(redisPod)]).toEqual([true, false, false]);
    const authSvc = admitted(authPod);
    expect([authSvc.open, authSvc.from(gatewayPod), authSvc.from(upstreamPod)]).toEqual([false, true, false]);
    const redis = admitted(redisPod);
    expect([redis.open, redis.from(gatewayPod), redis.from(authPod), redis.from(upstreamPod)]).toEqual([false, true, true, false]);
    // the public port of the gateway is open to all
    expect(admitted(gatewayPod).open).toBe(true);
  });

  if (dir.endsWith('sentinel')) {
    it('points both services at the Sentinels, with the names the CLI reads', (ctx) => {
      if (MISSING) ctx.skip(MISSING);
      for (const d of deployments()) {
        const env = new Map((containerOf(d).env ?? []).map((e) => [e.name, e]));
        expect(env.get('REDIS_SENTINELS')?.value, d.metadata.name).toMatch(/^[\w.-]+:\d+(,[\w.-]+:\d+)*$/);
        expect(env.get('REDIS_SENTINEL_MASTER')?.value, d.metadata.name).toBeTruthy();
        expect(env.get('REDIS_SENTINEL_PASSWORD')?.valueFrom?.secretKeyRef?.name).toBe('sessiongate-redis');
        expect(env.has('REDIS_CLUSTER_NODES')).toBe(false);
      }
      const redis = all('NetworkPolicy').find((p) => p.metadata.name === 'sessiongate-redis')!;
      const ports = (redis.spec.ingress as { ports?: { port: number }[] }[]).flatMap((r) => (r.ports ?? []).map((p) => p.port));
      expect(ports).toContain(26379);
    });
  }
});
