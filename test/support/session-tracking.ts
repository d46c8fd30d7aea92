import { Redis } from 'ioredis';
import type { KeyLayout } from '@sessiongate/session';

/** A gateway's view of Redis: the sids of the session keys Redis reports as changed. */
export interface SessionKeyWatch {
  /** Every sid reported so far, in order (one per change). */
  readonly sids: string[];
  close(): Promise<void>;
}

/**
 * Watches the session keys of a key layout as a gateway does: CLIENT TRACKING in broadcast
 * mode over the session key prefix, redirected to the connection itself (RESP2).
 */
export async function watchSessionKeys(url: string, keys: KeyLayout): Promise<SessionKeyWatch> {
  const conn = new Redis(url, { protocol: 2 });
  const prefix = `${keys.prefix}s:`;
  const sids: string[] = [];
  const id = await conn.client('ID');
  await conn.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id), 'BCAST', 'PREFIX', prefix);
  await conn.subscribe('__redis__:invalidate');
  conn.on('messageBuffer', (_channel: Buffer, payload: Buffer[] | null) => {
    for (const key of (payload ?? []).map(String)) if (key.startsWith(prefix)) sids.push(key.slice(key.indexOf('}') + 1));
  });
  return {
    sids,
    async close() {
      await conn.quit().catch(() => conn.disconnect());
    },
  };
}
