import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { DEFAULT_SERVICE_NAME } from '../defaults.js';
import type { Lookup, SessionResolver } from '../session/resolver.js';

// OpenTelemetry tracing, on when the standard OTEL_ environment asks for OTLP export. Off,
// nothing of the SDK is loaded (every import below is dynamic) and the request path pays one
// null check: the hooks stay null.

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

type LookupHook = (resolver: SessionResolver, token: string | null) => Promise<Lookup>;

let lookupHook: LookupHook | null = null;
let logMixin: (() => Record<string, string>) | null = null;
let shutdownHook: (() => Promise<void>) | null = null;

/**
 * True when the environment asks for traces: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint
 * with OTEL_TRACES_EXPORTER unset. OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none win.
 */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (exporters.length) return exporters.includes('otlp');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** The session lookup, in a span of its own while tracing is on. */
export function resolveTraced(resolver: SessionResolver, token: string | null): Promise<Lookup> {
  return lookupHook === null ? resolver.resolve(token) : lookupHook(resolver, token);
}

/** Pino options that put the active trace and span ids on every log line (none while off). */
export function tracingLoggerOptions(): { mixin?: () => Record<string, string> } {
  return logMixin ? { mixin: logMixin } : {};
}

/** Sends the spans still buffered; a no-op while off. */
export async function stopTracing(): Promise<void> {
  const hook = shutdownHook;
  shutdownHook = null;
  await hook?.();
}

/** Headers the propagator writes: the client's copies must not travel next to ours. */
const PROPAGATION_HEADERS = new Set(['traceparent', 'tracestate', 'baggage']);

/** Drops the client's trace headers from an undici request (the server span continued them). */
function dropClientTraceHeaders(request: { headers: string | string[] }): void {
  const h = request.headers;
  if (Array.isArray(h)) {
    for (let i = h.length - 2; i >= 0; i -= 2) if (PROPAGATION_HEADERS.has(h[i]!.toLowerCase())) h.splice(i, 2);
  } else if (typeof h === 'string') {
    request.headers = h
      .split('\r\n')
      .filter((line) => !PROPAGATION_HEADERS.has(line.slice(0, line.indexOf(':')).trim().toLowerCase()))
      .join('\r\n');
  }
}

/** ioredis 6 reports every command on this diagnostics channel. */
interface RedisCommandContext {
  command: string;
  args: string[];
  database: number;
  serverAddress: string;
  serverPort: number;
  error?: unknown;
}

/**
 * Starts the SDK when the environment asks for it: OTLP/HTTP export (JSON), W3C trace
 * context, a server span per request (http), a client span per upstream call (undici, with
 * `traceparent` sent upstream), a span per Redis command (ioredis's own tracing channel) and
 * the session lookup span. Call before the gateway's server is built. Returns whether it is on.
 */
export async function startTracing(env: NodeJS.ProcessEnv, opts: { ignorePorts?: readonly number[] } = {}): Promise<boolean> {
  if (!tracingRequested(env)) return false;
  const api = await import('@opentelemetry/api');
  const { NodeTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-node');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const { defaultResource, detectResources, envDetector, resourceFromAttributes } = await import('@opentelemetry/resources');
  const { registerInstrumentations } = await import('@opentelemetry/instrumentation');
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
  const { UndiciInstrumentation } = await import('@opentelemetry/instrumentation-undici');
  const { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } = await import('@opentelemetry/semantic-conventions');

  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the defaults
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: DEFAULT_SERVICE_NAME, [ATTR_SERVICE_VERSION]: VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  provider.register();
  const ignored = new Set(opts.ignorePorts ?? []);
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      // the metrics listener's scrapes and probes are not traffic
      new HttpInstrumentation({ ignoreIncomingRequestHook: (req) => ignored.has(req.socket.localPort ?? -1) }),
      // the upstream gets one traceparent: the gateway's call, in the client's trace if it sent one
      new UndiciInstrumentation({ requestHook: (_span, request) => dropClientTraceHeaders(request as unknown as { headers: string | string[] }) }),
    ],
  });
  // fastify required node:http before this ran: one require now lets the hook patch it
  createRequire(import.meta.url)('node:http');

  const tracer = provider.getTracer('sessiongate', VERSION);
  lookupHook = (resolver, token) =>
    tracer.startActiveSpan('session lookup', async (span) => {
      try {
        const lookup = await resolver.resolve(token);
        span.setAttribute('sessiongate.session.outcome', lookup.outcome);
        span.setAttribute('sessiongate.session.source', lookup.source);
        span.setAttribute('sessiongate.session.cache_hit', lookup.source === 'cache');
        if (lookup.outcome === 'store_error') span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'session store unavailable' });
        return lookup;
      } finally {
        span.end();
      }
    });

  // ioredis 6 publishes its commands on a TracingChannel: no patching of the client needed
  const { tracingChannel } = await import('node:diagnostics_channel');
  const spans = new WeakMap<object, import('@opentelemetry/api').Span>();
  tracingChannel<unknown, RedisCommandContext>('ioredis:command').subscribe({
    start(ctx) {
      const span = tracer.startSpan(
        ctx.command,
        {
          kind: api.SpanKind.CLIENT,
          attributes: {
            'db.system.name': 'redis',
            'db.operation.name': ctx.command.toUpperCase(),
            'db.namespace': String(ctx.database),
            'server.address': ctx.serverAddress,
            'server.port': ctx.serverPort,
          },
        },
        api.context.active(),
      );
      spans.set(ctx, span);
    },
    asyncEnd(ctx) {
      spans.get(ctx)?.end();
    },
    error(ctx) {
      const span = spans.get(ctx);
      span?.setStatus({ code: api.SpanStatusCode.ERROR, message: (ctx.error as Error | undefined)?.message ?? 'error' });
    },
    end() {},
    asyncStart() {},
  });

  const none: Record<string, string> = {};
  logMixin = () => {
    const span = api.trace.getActiveSpan();
    if (!span) return none;
    const c = span.spanContext();
    return { trace_id: c.traceId, span_id: c.spanId };
  };
  shutdownHook = () => provider.shutdown();
  return true;
}
