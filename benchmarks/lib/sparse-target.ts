// The sparse scenarios: an image that is mostly holes with a few islands of random data, the
// target's allocation after each run (`du --block-size=1` of the target file, or of the loop
// device's backing file), a comparison that reads only what is not a hole on either side
// (cmp of 64 GiB of holes would take longer than the runs), and their targets.

import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { dataRanges } from '../../src/local/holes.js';
import type { Aggregate, RunRecord, Target } from './records.js';
import { MiB, type ImageSpec } from './scenarios.js';

/** `spec.islands.count` runs of `spec.islands.mib` MiB of random bytes, evenly spread, the rest holes. */
export async function writeIslands(path: string, spec: ImageSpec): Promise<void> {
  const { count, mib } = spec.islands!;
  const size = spec.mib * MiB;
  const key = createHash('sha256').update(`ddt-islands:${spec.seed}`).digest();
  const stream = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
    // Unaligned starts: islands cross chunk and block boundaries, as real data does.
    for (let i = 0; i < count; i++) {
      const at = Math.floor(((i + 0.5) * size) / count / 4096) * 4096 + 12288;
      for (let done = 0; done < mib; done++) await fh.write(stream.update(Buffer.alloc(MiB)), 0, MiB, at + done * MiB);
    }
  } finally {
    await fh.close();
  }
}

export function allocatedBytes(path: string): number {
  return Number(execFileSync('du', ['--block-size=1', path], { encoding: 'utf8' }).split('\t')[0]);
}

/** Two sparse files hold the same bytes: every range that is data in either is compared; the rest is holes in both. */
export async function sparseIdentical(a: string, b: string, size: number): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const ranges = [...(dataRanges(fa.fd, 0, size) ?? [{ offset: 0, length: size }]), ...(dataRanges(fb.fd, 0, size) ?? [{ offset: 0, length: size }])];
    const x = Buffer.alloc(4 * MiB);
    const y = Buffer.alloc(4 * MiB);
    for (const r of ranges) {
      for (let at = r.offset; at < r.offset + r.length; ) {
        const n = Math.min(x.length, r.offset + r.length - at);
        const [ra, rb] = await Promise.all([fa.read(x, 0, n, at), fb.read(y, 0, n, at)]);
        if (ra.bytesRead !== n || rb.bytesRead !== n || !x.subarray(0, n).equals(y.subarray(0, n))) return false;
        at += n;
      }
    }
    return true;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '–');

/** The sparse scenarios' targets: wall time against `dd | ssh dd` (conv=sparse for the 64 GiB ones) and the target's allocation. */
export function sparseTargets(aggs: Aggregate[], records: RunRecord[], dataBytes: (scenario: string) => number | undefined): Target[] {
  const out: Target[] = [];
  const sixteen = aggs.find((a) => a.scenario === 'sparse' && a.method === 'ddt');
  if (sixteen?.ratio['dd-ssh'] !== undefined) {
    out.push({ target: 'sparse (16 GiB, ≈ 5 % data): ddt ≤ 0.2 × (a) dd | ssh dd, without --target-zeroed', measured: `${f(sixteen.ratio['dd-ssh'])} ×`, pass: sixteen.ratio['dd-ssh'] <= 0.2 });
  }
  for (const a of aggs.filter((x) => x.method === 'ddt' && dataBytes(x.scenario) !== undefined)) {
    const data = dataBytes(a.scenario)!;
    const ratio = a.ratio['dd-ssh'];
    if (ratio !== undefined) out.push({ target: `${a.scenario}: ddt ≤ 0.1 × dd | ssh 'dd conv=notrunc,sparse'`, measured: `${f(ratio)} × (${f(a.wall, 1)} s)`, pass: ratio <= 0.1 });
    const alloc = Math.max(...records.filter((r) => r.scenario === a.scenario && r.method === a.method && r.allocated !== undefined).map((r) => r.allocated!));
    out.push({ target: `${a.scenario}: target allocation ≤ 1.2 × the data (${f(data / MiB, 0)} MiB)`, measured: `${f(alloc / MiB, 1)} MiB (${f(alloc / data)} ×)`, pass: alloc <= 1.2 * data });
  }
  return out;
}
