import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';

export interface ReadinessCheck {
  /** A short name shown in the /readyz body. */
  name: string;
  /** Resolves true when this part is ready; must settle within its own timeout. */
  check(): Promise<boolean>;
}

/** What /metrics serves: a prom-client Registry fits. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface OpsRoutesOptions {
  registry: MetricsSource;
  checks: readonly ReadinessCheck[];
  /** True once shutdown began: /readyz says 503 so load balancers stop sending. */
  draining: () => boolean;
}

/** /metrics, /healthz and /readyz, for the metrics listener only (never the public one). */
const opsRoutes: FastifyPluginAsync<OpsRoutesOptions> = async (fastify, opts) => {
  fastify.get('/metrics', async (_req, reply) => {
    const body = await opts.registry.metrics();
    return reply.type(opts.registry.contentType).send(body);
  });
  fastify.get('/healthz', async () => ({ status: 'ok' }));
  fastify.get('/readyz', async (_req, reply) => {
    const checks: Record<string, boolean> = {};
    await Promise.all(
      opts.checks.map(async (c) => {
        checks[c.name] = await c.check().catch(() => false);
      }),
    );
    const draining = opts.draining();
    const ready = !draining && Object.values(checks).every(Boolean);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : draining ? 'draining' : 'not_ready', checks });
  });
};

/**
 * The metrics listener's app: its own Fastify instance (never the public one), logging
 * through the service's logger, serving the ops routes. Not listening yet.
 */
export async function buildOpsApp(log: FastifyBaseLogger, opts: OpsRoutesOptions): Promise<FastifyInstance> {
  const ops = Fastify({
    loggerInstance: log.child({ listener: 'metrics' }),
    logController: new LogController({ disableRequestLogging: true }),
  });
  await ops.register(fp(opsRoutes, { name: 'sessiongate-ops-routes', fastify: '5.x' }), opts);
  await ops.ready();
  return ops;
}
