import type { FastifyServerOptions } from 'fastify';

/**
 * Paths pino removes from every log line: the session cookie, the identity header, any
 * credential. Request logs are our own one-liners (no headers), this is the safety net.
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
  'cookie',
  'token',
  'password',
  'xSession',
];

export interface LoggerChoice {
  level?: string;
  /** Human-readable output (used when stdout is a terminal). */
  pretty?: boolean;
}

/** Fastify logger options: JSON lines, redacted, pretty on a terminal. */
export function loggerOptions(choice: LoggerChoice = {}): FastifyServerOptions['logger'] {
  return {
    level: choice.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(choice.pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  };
}
