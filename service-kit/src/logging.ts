/**
 * Paths pino removes from every log line: the session cookie, the identity header, any
 * credential. Request logs are one-liners without headers or bodies; this is the safety net.
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

export interface LoggerChoice {
  /** @default 'info' */
  level?: string;
  /** Human-readable lines (pino-pretty), for a terminal. */
  pretty?: boolean;
  /** Where JSON lines go (tests capture them). @default stdout */
  stream?: NodeJS.WritableStream;
}

export interface LoggerOptions {
  level: string;
  redact: { paths: string[]; censor: string };
  stream?: NodeJS.WritableStream;
  transport?: { target: string; options: Record<string, unknown> };
}

/** Fastify logger options: JSON lines, redacted, pretty on a terminal. */
export function loggerOptions(choice: LoggerChoice = {}): LoggerOptions {
  return {
    level: choice.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(choice.stream ? { stream: choice.stream } : {}),
    ...(choice.pretty && !choice.stream
      ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } }
      : {}),
  };
}

/**
 * Whether `log` writes info lines: a line built only to be dropped (LOG_LEVEL=warn) costs the
 * request path for nothing, so callers ask first.
 */
export function infoEnabled(log: object): boolean {
  return (log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info') !== false;
}
