/**
 * Paths pino removes from every log line: the identity header, cookies, credentials. The
 * request logs are our own one-liners without headers or bodies; this is the safety net.
 */
export const REDACT_PATHS = [
  'req.headers.cookie',
  'req.headers.authorization',
  'req.headers["x-session"]',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.cookie',
  'headers.authorization',
  'headers["x-session"]',
  'headers["set-cookie"]',
  'body.password',
  'req.body.password',
  'cookie',
  'token',
  'password',
  'xSession',
];

export interface AuthLoggerOptions {
  /** @default 'info' */
  level?: string;
  /** Where the JSON lines go (tests capture them). @default stdout */
  stream?: NodeJS.WritableStream;
}

/** Fastify logger options: JSON lines, redacted. */
export function loggerOptions(o: AuthLoggerOptions = {}): { level: string; redact: { paths: string[]; censor: string }; stream?: NodeJS.WritableStream } {
  return {
    level: o.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(o.stream ? { stream: o.stream } : {}),
  };
}
