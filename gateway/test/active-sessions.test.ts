import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ACTIVE_WINDOW_MS, ActiveSessions, linearCount } from '../src/session/active-sessions.js';

// The `active_sessions` gauge: distinct sessions seen in the last five minutes, counted in a
// fixed amount of memory (a bitmap per minute) however many sessions there are.

const sid = (): string => randomBytes(17).toString('base64url').slice(0, 22);
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

describe('ActiveSessions', () => {
  it('counts a few sessions exactly, each once however often it is seen', () => {
    const seen = new ActiveSessions();
    expect(seen.count(T0)).toBe(0);
    const [a, b, c] = [sid(), sid(), sid()];
    seen.note(a, T0);
    seen.note(b, T0 + 1000);
    seen.note(a, T0 + 2000);
    seen.note(c, T0 + 90_000);
    seen.note(a, T0 + 120_000);
    expect(seen.count(T0 + 120_000)).toBe(3);
  });

  it('forgets a session not seen within the window, and keeps one seen again', () => {
    const seen = new ActiveSessions();
    const [old, again] = [sid(), sid()];
    seen.note(old, T0);
    seen.note(again, T0);
    expect(seen.count(T0 + ACTIVE_WINDOW_MS - 1000)).toBe(2);
    seen.note(again, T0 + ACTIVE_WINDOW_MS);
    // counted by the minute: gone once its minute is past the window
    expect(seen.count(T0 + ACTIVE_WINDOW_MS + 60_000)).toBe(1);
    expect(seen.count(T0 + 2 * ACTIVE_WINDOW_MS + 60_000)).toBe(0);
  });

  it('reuses a minute that left the window without counting what it held', () => {
    const seen = new ActiveSessions();
    for (let i = 0; i < 50; i++) seen.note(sid(), T0);
    // the same slot of the ring, one window and one minute later
    const later = T0 + ACTIVE_WINDOW_MS + 60_000;
    seen.note(sid(), later);
    expect(seen.count(later)).toBe(1);
  });

  it('counts 200,000 sessions within half a percent', () => {
    const seen = new ActiveSessions();
    const n = 200_000;
    for (let i = 0; i < n; i++) seen.note(sid(), T0 + (i % 240) * 1000);
    const counted = seen.count(T0 + 240_000);
    expect(Math.abs(counted - n) / n).toBeLessThan(0.005);
  });

  it('notes an entry at most once a second', () => {
    const seen = new ActiveSessions();
    const entry = { seenAtSecond: 0 };
    seen.noteEntry(entry, sid(), T0);
    expect(entry.seenAtSecond).toBe(T0 / 1000);
    seen.noteEntry(entry, sid(), T0 + 500);
    expect(seen.count(T0 + 500)).toBe(1);
    seen.noteEntry(entry, sid(), T0 + 1000);
    expect(seen.count(T0 + 1000)).toBe(2);
  });
});

describe('linearCount', () => {
  it('estimates from the bits left unset', () => {
    expect(linearCount(1024, 0)).toBe(0);
    expect(linearCount(1024, 1)).toBe(1);
    // 1024 × ln(1024 / 512)
    expect(linearCount(1024, 512)).toBe(710);
    // every bit set: at least this many
    expect(linearCount(1024, 1024)).toBe(Math.round(1024 * Math.log(1024)));
  });
});
