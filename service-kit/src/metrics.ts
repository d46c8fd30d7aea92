import { readFileSync } from 'node:fs';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServiceRegistryOptions {
  /** The package.json whose version `sessiongate_build_info` reports. */
  packageJson: URL;
  /** A registry to fill; a new one otherwise. */
  registry?: Registry;
  /**
   * Node.js process metrics (event loop, heap, CPU).
   * @default true
   */
  defaultMetrics?: boolean;
}

/** The `version` field of a package.json. */
export function packageVersion(packageJson: URL): string {
  return (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;
}

/**
 * A service's Prometheus registry: its own, never the global one (two apps in one process
 * would collide there), with `sessiongate_build_info` and Node's default metrics.
 */
export function serviceRegistry(opts: ServiceRegistryOptions): Registry {
  const registry = opts.registry ?? new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'sessiongate_build_info',
    help: 'Always 1: the sessiongate version and the Node.js version of this process',
    labelNames: ['version', 'node_version'],
    registers: [registry],
    // with --workers N: every worker says the same (`aggregator`: how the primary combines workers)
    aggregator: 'first',
  }).set({ version: packageVersion(opts.packageJson), node_version: process.version }, 1);
  return registry;
}
