import { serviceRegistry } from '@sessiongate/service-kit';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { LookupOutcome, LookupSource } from '../session/resolver.js';
import type { DataWriteCount } from '../session-data/endpoint.js';
import type { ForwardAuthDecision } from '../forward-auth/endpoint.js';
import type { Decision } from '../policy/decide.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const REDIS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/**
 * Statuses an alert needs apart from the rest of their class: refusals (401, 403, 404, 429)
 * and the fail-closed 503. Every other status is counted by its class alone, so `code` has
 * at most five values more than `status_class`.
 */
const DISTINCT_CODES = new Set([401, 403, 404, 429, 503]);

/** The `code` label: the exact status for those above, the class (`2xx`, `5xx`…) otherwise. */
export function statusCodeLabel(status: number): string {
  return DISTINCT_CODES.has(status) ? String(status) : `${Math.floor(status / 100)}xx`;
}

type Labels<L extends string> = Partial<Record<L, string>>;

/**
 * Counts for the request path: an increment adds to a plain number per label set, and the
 * sums reach the prom-client counter whenever the registry is read (a scrape), so a request
 * pays one map lookup instead of prom-client's label validation and hashing.
 */
class Tally<L extends string> {
  private readonly cells = new Map<string, { labels: Labels<L>; n: number }>();

  /** `key` names the label set; `labels` is read only the first time a key is seen. */
  add(key: string, labels: Labels<L>): void {
    if (!this.bump(key)) this.cells.set(key, { labels, n: 1 });
  }

  /** Counts one more for a label set seen before; false (nothing counted) for a new one. */
  bump(key: string): boolean {
    const cell = this.cells.get(key);
    if (cell === undefined) return false;
    cell.n++;
    return true;
  }

  /** Hands the pending counts to the counter (its `collect`). */
  flush(counter: Counter<L>): void {
    for (const cell of this.cells.values()) {
      if (cell.n > 0) {
        counter.inc(cell.labels, cell.n);
        cell.n = 0;
      }
    }
  }
}

type HistogramValue = { labels: Record<string, string | number>; value: number; metricName: string };

/**
 * A Prometheus histogram for the request path: an observation adds to plain numbers (bucket
 * counts per label set), and the registry reads them in the shape prom-client's Histogram
 * gives (also to the cluster aggregation), whose own `observe` validates and hashes its
 * labels and allocates on every call.
 */
export class PathHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly cells = new Map<string, { labels: Record<L, string>; buckets: Float64Array; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    private readonly bounds: readonly number[],
  ) {}

  /** One observation; with one label its value names the label set. */
  observe(labels: Record<L, string>, seconds: number): void {
    const names = this.labelNames;
    const key = names.length === 1 ? labels[names[0]!] : names.map((n) => labels[n]).join('\n');
    this.observeAs(key, seconds, () => labels);
  }

  /**
   * One observation of the label set `key` names; `labelsOf` is called only the first time a
   * key is seen (a function made once, so a known label set allocates nothing).
   */
  observeAs(key: string, seconds: number, labelsOf: (key: string) => Record<L, string>): void {
    if (!Number.isFinite(seconds)) return;
    let cell = this.cells.get(key);
    if (cell === undefined) {
      cell = { labels: { ...labelsOf(key) }, buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 };
      this.cells.set(key, cell);
    }
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]!) {
        cell.buckets[i]!++;
        break;
      }
    }
    cell.sum += seconds;
    cell.count++;
  }

  /** What the registry reads: cumulative buckets, +Inf, sum and count per label set. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] }> {
    const values: HistogramValue[] = [];
    for (const cell of this.cells.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += cell.buckets[i]!;
        values.push({ labels: { le: this.bounds[i]!, ...cell.labels }, value: acc, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', ...cell.labels }, value: cell.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...cell.labels }, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...cell.labels }, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.cells.clear();
  }
}

/** The labels of a Redis command's key: `get` (answered), `get\nerror` (failed or timed out). */
function redisCommandLabels(key: string): Record<'command' | 'result', string> {
  const i = key.indexOf('\n');
  return i < 0 ? { command: key, result: 'ok' } : { command: key.slice(0, i), result: 'error' };
}

/**
 * The gateway's Prometheus metrics, in a registry of its own (two apps in one process must
 * not collide in the global one), served on the metrics listener only.
 */
export class GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'route' | 'method' | 'status_class' | 'code'>;
  readonly requestDuration: PathHistogram<'route'>;
  readonly sessionLookups: Counter<'outcome' | 'source'>;
  readonly decisions: Counter<'route' | 'decision'>;
  /** Forward-auth answers, kept apart from the proxied requests of sessiongate_requests_total. */
  readonly forwardAuthDecisions: Counter<'route' | 'decision'>;
  readonly redisCommandDuration: PathHistogram<'command' | 'result'>;
  readonly upstreamErrors: Counter<'route' | 'kind'>;
  readonly configReloads: Counter<'result'>;
  readonly configLastReloadSuccess: Gauge;
  readonly configLastReloadSuccessful: Gauge;
  readonly xSessionSigned: Counter<'reused'>;
  readonly sessionDataWrites: Counter<'route' | 'outcome'>;
  /** Every Redis command of a request without the cache is observed here: one map lookup. */
  redisCommand(command: string, seconds: number, ok: boolean): void {
    this.redisCommandDuration.observeAs(ok ? command : `${command}\nerror`, seconds, redisCommandLabels);
  }
  private readonly requestTally = new Tally<'route' | 'method' | 'status_class' | 'code'>();
  private readonly lookupTally = new Tally<'outcome' | 'source'>();
  private readonly decisionTally = new Tally<'route' | 'decision'>();
  private readonly forwardAuthTally = new Tally<'route' | 'decision'>();
  private readonly signedTally = new Tally<'reused'>();

  constructor(opts: { registry?: Registry; defaultMetrics?: boolean; sessionGauges?: () => { active: number; cached: number; cacheEnabled: boolean; cacheActive: boolean } } = {}) {
    // the package version, from the same path in src/ops and dist/ops
    this.registry = serviceRegistry({ packageJson: new URL('../../package.json', import.meta.url), registry: opts.registry, defaultMetrics: opts.defaultMetrics });
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'sessiongate_requests_total',
      help: 'Requests answered by the gateway, by route, method, status class and code (the exact status for 401, 403, 404, 429 and 503, else the class)',
      labelNames: ['route', 'method', 'status_class', 'code'],
      registers,
      collect: () => this.requestTally.flush(this.requests),
    });
    this.requestDuration = new PathHistogram('sessiongate_request_duration_seconds', 'Time from request to response, by route', ['route'], LATENCY_BUCKETS);
    this.registry.registerMetric(this.requestDuration as unknown as Histogram<'route'>);
    this.sessionLookups = new Counter({
      name: 'sessiongate_session_lookups_total',
      help:
        'Session lookups by source (cache, redis, none) and outcome: valid; no_cookie (no session cookie); ' +
        'malformed (a cookie that is not a well-formed token, or the cookie twice); ' +
        'missing (a well-formed token with no session in Redis: unknown, forged, logged out, revoked or idle-expired, which Redis cannot tell apart); ' +
        'expired (a session found past its absolute expiry); invalid (a stored record that cannot be read); ' +
        'store_error (Redis did not answer: the request got 503)',
      labelNames: ['outcome', 'source'],
      registers,
      collect: () => this.lookupTally.flush(this.sessionLookups),
    });
    this.decisions = new Counter({
      name: 'sessiongate_policy_decisions_total',
      help: 'Policy decisions by route and decision (allow, unauthenticated, forbidden)',
      labelNames: ['route', 'decision'],
      registers,
      collect: () => this.decisionTally.flush(this.decisions),
    });
    this.redisCommandDuration = new PathHistogram(
      'sessiongate_redis_command_duration_seconds',
      'Latency of the Redis commands the gateway sends, by command and result',
      ['command', 'result'],
      REDIS_BUCKETS,
    );
    this.registry.registerMetric(this.redisCommandDuration as unknown as Histogram<'command' | 'result'>);
    this.upstreamErrors = new Counter({
      name: 'sessiongate_upstream_errors_total',
      help: 'Failed upstream requests by route and kind (timeout, unavailable, reset, other)',
      labelNames: ['route', 'kind'],
      registers,
    });
    this.configReloads = new Counter({
      name: 'sessiongate_config_reloads_total',
      help: 'Routes file reloads by result (success, failure)',
      labelNames: ['result'],
      registers,
      // every worker reloads on each SIGHUP or file change: one reload, not one per worker
      aggregator: 'max',
    });
    this.configLastReloadSuccess = new Gauge({
      name: 'sessiongate_config_last_reload_success_timestamp_seconds',
      help: 'When the routes in force were loaded (Unix time)',
      registers,
      // the oldest routes any worker serves
      aggregator: 'min',
    });
    this.configLastReloadSuccessful = new Gauge({
      name: 'sessiongate_config_last_reload_successful',
      help: '1 if the last routes file reload succeeded (or none was tried yet), 0 if it failed and older routes are in force',
      registers,
      aggregator: 'min',
    });
    this.configLastReloadSuccessful.set(1);
    this.xSessionSigned = new Counter({
      name: 'sessiongate_xsession_headers_total',
      help: 'X-Session headers attached to forwarded requests, by whether a signed one was reused',
      labelNames: ['reused'],
      registers,
      collect: () => this.signedTally.flush(this.xSessionSigned),
    });
    const gauges = opts.sessionGauges;
    if (gauges) {
      new Gauge({
        name: 'sessiongate_active_sessions',
        help: 'Distinct sessions seen by this gateway in the last 5 minutes',
        registers,
        // workers see overlapping subsets: a sum would count a session once per worker
        aggregator: 'max',
        collect() {
          this.set(gauges().active);
        },
      });
      new Gauge({
        name: 'sessiongate_session_cache_entries',
        help: 'Sessions held in the local cache',
        registers,
        // entries in memory, all workers together
        aggregator: 'sum',
        collect() {
          this.set(gauges().cached);
        },
      });
      new Gauge({
        name: 'sessiongate_session_cache_enabled',
        help: '1 when the local cache is configured on (SESSION_CACHE), else 0',
        registers,
        aggregator: 'min',
        collect() {
          this.set(gauges().cacheEnabled ? 1 : 0);
        },
      });
      new Gauge({
        name: 'sessiongate_session_cache_active',
        help: '1 while the local cache is in use (key tracking on and answering on every node, Redis answering), else 0',
        registers,
        // 1 only when it is in use in every worker
        aggregator: 'min',
        collect() {
          this.set(gauges().cacheActive ? 1 : 0);
        },
      });
    }
    this.configReloads.inc({ result: 'success' }, 0);
    this.forwardAuthDecisions = new Counter({
      name: 'sessiongate_forward_auth_decisions_total',
      help:
        'Forward-auth answers by matched route ("(none)" before one matched) and decision: allow (200); ' +
        'unauthenticated (401 or the sign-in redirect); forbidden (403: roles, CSRF); refused (403: a ' +
        'non-canonical or malformed description, no route, a method the route refuses); unavailable (503: Redis)',
      labelNames: ['route', 'decision'],
      registers,
      collect: () => this.forwardAuthTally.flush(this.forwardAuthDecisions),
    });
    this.sessionDataWrites = new Counter({
      name: 'sessiongate_session_data_writes_total',
      help:
        'Session data writes by route ("(none)" when no valid X-Session named one) and outcome: written; unauthenticated, ' +
        'undeclared, no_session, malformed, delete_refused, too_large, gone (refused, nothing written); unavailable (Redis)',
      labelNames: ['route', 'outcome'],
      registers,
    });
    this.configReloads.inc({ result: 'failure' }, 0);
  }

  /** One session data write answered. */
  sessionDataWrite(route: string, outcome: DataWriteCount): void {
    this.sessionDataWrites.inc({ route, outcome });
  }

  /** One forward-auth answer (counted on the request path, reported at scrape). */
  forwardAuth(route: string, decision: ForwardAuthDecision): void {
    this.forwardAuthTally.add(`${route} ${decision}`, { route, decision });
  }

  /** One request answered (counted on the request path, reported at scrape). */
  request(route: string, method: string, status: number): void {
    const key = `${route} ${method} ${status}`;
    if (this.requestTally.bump(key)) return;
    this.requestTally.add(key, {
      route,
      method,
      status_class: `${Math.floor(status / 100)}xx`,
      code: statusCodeLabel(status),
    });
  }

  lookup(outcome: LookupOutcome, source: LookupSource): void {
    this.lookupTally.add(`${outcome} ${source}`, { outcome, source });
  }

  decision(route: string, decision: Decision): void {
    this.decisionTally.add(`${route} ${decision}`, { route, decision });
  }

  /** One X-Session attached, signed now or reused. */
  xSession(reused: boolean): void {
    this.signedTally.add(reused ? 'true' : 'false', { reused: reused ? 'true' : 'false' });
  }
}
