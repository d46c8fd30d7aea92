// What the primary and its workers say to each other over the cluster IPC channel.

/** Worker → primary: listening and serving. */
export const READY = 'sessiongate:ready';
/** Primary → worker: re-read the routes file. */
export const RELOAD = 'sessiongate:reload';
/** Primary → worker: answer with your /readyz. */
export const READYZ = 'sessiongate:readyz';
/** Worker → primary: the answer. */
export const READYZ_RESULT = 'sessiongate:readyz-result';
/** Primary → worker: drain and exit (as SIGTERM does). */
export const SHUTDOWN = 'sessiongate:shutdown';

export type PrimaryMessage =
  | { type: typeof RELOAD; why: string }
  | { type: typeof READYZ; id: number }
  | { type: typeof SHUTDOWN };

export type WorkerMessage = { type: typeof READY } | { type: typeof READYZ_RESULT; id: number; ready: boolean };

/** Messages of ours (prom-client's own share the channel). */
export function isMessage<T extends { type: string }>(msg: unknown, type: T['type']): msg is T {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === type;
}
