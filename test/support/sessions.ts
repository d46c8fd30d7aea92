import { parseRecord, type SessionRecord, type SessionRef, type SessionStore } from '@sessiongate/session';

/** The record of a session as stored, or null (throws InvalidRecordError when corrupt). */
export async function readSession(store: SessionStore, ref: SessionRef): Promise<SessionRecord | null> {
  const raw = await store.readRaw(ref);
  return raw === null ? null : parseRecord(raw, ref.sid);
}
