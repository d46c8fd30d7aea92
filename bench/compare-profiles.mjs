#!/usr/bin/env node
// Compares two CPU profiles written by `npm run bench -- --profile` (bench/results/profiles/):
// self time per function, busy time only (idle left out), each scaled to µs per request
// with the "CPU µs/req" the bench printed for that process, largest differences first.
//
//   node bench/compare-profiles.mjs A.cpuprofile A_US_PER_REQ B.cpuprofile B_US_PER_REQ [rows]
import fs from 'node:fs';

const [fileA, usA, fileB, usB, rows = '40'] = process.argv.slice(2);
if (!fileA || !Number(usA) || !fileB || !Number(usB)) {
  process.stderr.write('usage: node bench/compare-profiles.mjs A.cpuprofile A_US_PER_REQ B.cpuprofile B_US_PER_REQ [rows]\n');
  process.exit(2);
}

/** Self time per function as µs per request. */
function selfTimes(file, usPerRequest) {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const times = new Map();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = nodes.get(profile.samples[i]).callFrame;
    if (frame.functionName === '(idle)') continue;
    const dt = profile.timeDeltas[i] ?? 0;
    const where = frame.url.replace(/.*node_modules\//, '').replace(/^file:\/\/.*?\/(gateway|bench)\//, '$1/');
    const key = `${frame.functionName || '(anonymous)'} ${where}${where ? `:${frame.lineNumber + 1}` : ''}`;
    times.set(key, (times.get(key) ?? 0) + dt);
    busy += dt;
  }
  return new Map([...times].map(([k, t]) => [k, (t / busy) * usPerRequest]));
}

const a = selfTimes(fileA, Number(usA));
const b = selfTimes(fileB, Number(usB));
const lines = [...new Set([...a.keys(), ...b.keys()])]
  .map((k) => [k, a.get(k) ?? 0, b.get(k) ?? 0])
  .sort((x, y) => Math.abs(y[2] - y[1]) - Math.abs(x[2] - x[1]))
  .slice(0, Number(rows));
process.stdout.write('   A µs    B µs    B−A   function\n');
for (const [k, x, y] of lines) {
  process.stdout.write(`${x.toFixed(2).padStart(7)} ${y.toFixed(2).padStart(7)} ${(y - x).toFixed(2).padStart(7)}   ${k}\n`);
}
