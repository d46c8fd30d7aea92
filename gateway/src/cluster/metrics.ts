import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { MetricsSource } from '@sessiongate/service-kit';

/**
 * The primary's own metrics, served together with every worker's (summed by prom-client's
 * cluster aggregation, each metric by its `aggregator`). The primary collects no process
 * metrics of its own: they would repeat the names the workers' sums already use.
 */
export class PrimaryMetrics {
  readonly registry = new Registry();
  readonly restarts: Counter;
  private readonly aggregator = new AggregatorRegistry();

  constructor(readyWorkers: () => number) {
    const registers = [this.registry];
    this.restarts = new Counter({
      name: 'sessiongate_worker_restarts_total',
      help: 'Worker processes that exited unexpectedly and were replaced',
      registers,
    });
    new Gauge({
      name: 'sessiongate_workers_ready',
      help: 'Worker processes running and ready (GATEWAY_WORKERS is the number wanted)',
      registers,
      collect() {
        this.set(readyWorkers());
      },
    });
  }

  /** What the primary's /metrics serves: the workers' sums, then its own. */
  source(): MetricsSource {
    return {
      contentType: this.registry.contentType,
      metrics: async () => {
        const [workers, own] = await Promise.all([this.aggregator.clusterMetrics(), this.registry.metrics()]);
        return workers && !workers.endsWith('\n') ? `${workers}\n${own}` : `${workers}${own}`;
      },
    };
  }
}
