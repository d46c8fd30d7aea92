// Latency histograms: what one load run saw, kept whole so that several runs can be pooled
// and a percentile taken over all their requests rather than over one run's.

/** A histogram (Map: latency in µs → count) of latencies in ms, sorted or not. */
export function histOfMs(samples) {
  const h = new Map();
  for (const ms of samples) {
    const us = Math.round(ms * 1000);
    h.set(us, (h.get(us) ?? 0) + 1);
  }
  return h;
}

/** The histogram wrk-cookies.lua prints on its "HIST" line, or null when there is none. */
export function histOfWrk(text) {
  const line = /^HIST (.*)$/m.exec(text)?.[1];
  if (line === undefined) return null;
  const h = new Map();
  for (const pair of line.trim().split(' ')) {
    const [us, count] = pair.split(':').map(Number);
    if (Number.isFinite(us) && count > 0) h.set(us, (h.get(us) ?? 0) + count);
  }
  return h;
}

/**
 * The p-th percentile (ms) of histograms pooled, each count multiplied by its part's weight:
 * parts is a list of { hist, weight }. NaN when no part has a histogram.
 */
export function pooledPercentile(parts, p) {
  const mass = new Map();
  let total = 0;
  for (const { hist, weight = 1 } of parts) {
    if (!hist) continue;
    for (const [us, count] of hist) {
      mass.set(us, (mass.get(us) ?? 0) + count * weight);
      total += count * weight;
    }
  }
  if (!total) return NaN;
  const want = (p / 100) * total;
  let seen = 0;
  for (const us of [...mass.keys()].sort((a, b) => a - b)) {
    seen += mass.get(us);
    if (seen >= want) return us / 1000;
  }
  return NaN;
}
