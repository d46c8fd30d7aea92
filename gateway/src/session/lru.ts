import { LRUCache } from 'lru-cache';

const ONE = (): number => 1;

/**
 * An LRU of at most `max` entries whose storage grows with what it holds. Given `max`,
 * lru-cache sets aside room for all of them up front: for 100 000 entries, about 3 MB that
 * every full garbage collection goes over, however few are held. Given the bound as a size
 * of one per entry, it takes only the room its entries need.
 */
export function growingLru<K extends {}, V extends {}>(
  max: number,
  opts: Omit<LRUCache.Options<K, V, unknown>, 'max' | 'maxSize' | 'sizeCalculation'> = {},
): LRUCache<K, V> {
  return new LRUCache<K, V>({ ...opts, maxSize: max, sizeCalculation: ONE } as LRUCache.Options<K, V, unknown>);
}
