// Deterministic test images for benchmarks: mixed (≈40% random, 40% zeros, 20% text in runs
// of 4–40 MiB, as DESIGN §6 describes), random, or sparse (5% data).
// Usage: node benchmarks/make-image.mjs PATH SIZE_MIB [mixed|random|sparse] [seed]
import { openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';

const [path, sizeMib, kind = 'mixed', seedArg = '1'] = process.argv.slice(2);
const size = Number(sizeMib) * 1024 * 1024;
let s = BigInt(seedArg) | 1n;
const M = (1n << 64n) - 1n;
function next() { // xorshift64*
  s ^= s >> 12n; s ^= (s << 25n) & M; s ^= s >> 27n;
  return Number(((s * 0x2545f4914f6cdd1dn) & M) >> 11n) / 2 ** 53;
}
const CH = 4 * 1024 * 1024;
function randomChunk(n) {
  const b = Buffer.allocUnsafe(n);
  const v = new Uint32Array(b.buffer, b.byteOffset, n >> 2);
  let x = (Math.floor(next() * 2 ** 32) >>> 0) || 1;
  for (let i = 0; i < v.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; v[i] = x >>> 0; }
  return b;
}
const words = 'lorem ipsum dolor sit amet block device transfer verified journal resume checksum '.split(' ');
function textChunk(n) {
  let t = '';
  while (t.length < n) t += words[Math.floor(next() * words.length)] + (next() < 0.1 ? '\n' : ' ');
  return Buffer.from(t.slice(0, n));
}
const fd = openSync(path, 'w');
ftruncateSync(fd, size);
let pos = 0;
while (pos < size) {
  const run = Math.min(size - pos, (4 + Math.floor(next() * 37)) * 1024 * 1024);
  const r = next();
  const type = kind === 'random' ? 'random' : kind === 'sparse' ? (r < 0.05 ? 'random' : 'zero') : r < 0.4 ? 'random' : r < 0.8 ? 'zero' : 'text';
  if (type !== 'zero') {
    for (let p = 0; p < run; p += CH) {
      const n = Math.min(CH, run - p);
      writeSync(fd, type === 'random' ? randomChunk(n) : textChunk(n), 0, n, pos + p);
    }
  }
  pos += run;
}
closeSync(fd);
