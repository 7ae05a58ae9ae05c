// Deterministic test images for benchmarks: mixed (≈40% random, 40% zeros, 20% text in runs
// of 4–40 MiB), random, or sparse (≈5% data). The generator is
// src/demo/image.ts (the tests and `ddt demo` use it too): run `npm run build` first.
// Usage: node benchmarks/make-image.mjs PATH SIZE_MIB [mixed|random|sparse] [seed]
import { existsSync } from 'node:fs';

const built = new URL('../dist/demo/image.js', import.meta.url);
if (!existsSync(built)) {
  console.error('make-image: dist/ is missing: run npm run build first');
  process.exit(2);
}
const { writeImage } = await import(built.href);
const [path, sizeMib, kind = 'mixed', seed = '1'] = process.argv.slice(2);
if (!path || !/^\d+$/.test(sizeMib ?? '') || !['mixed', 'random', 'sparse'].includes(kind) || !/^\d+$/.test(seed)) {
  console.error('usage: node benchmarks/make-image.mjs PATH SIZE_MIB [mixed|random|sparse] [seed]');
  process.exit(2);
}
await writeImage(path, Number(sizeMib) * 1024 * 1024, kind, Number(seed));
