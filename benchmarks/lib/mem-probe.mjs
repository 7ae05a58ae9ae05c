// Memory probe for experiments (not used by the normal bench): preload it into ddt with
//   NODE_OPTIONS=--import=/abs/path/benchmarks/lib/mem-probe.mjs DDT_MEMPROBE_LOG=/tmp/mem.jsonl
// It appends process.memoryUsage() every 500 ms (and the peak at exit) as JSON lines.
// DDT_MEMPROBE_GC=1 also forces a full GC before each sample: if rss then stays low, the
// memory was garbage waiting for a collection; if not, something still holds it.
import { appendFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const log = process.env.DDT_MEMPROBE_LOG;
if (log) {
  let gc;
  if (process.env.DDT_MEMPROBE_GC === '1') {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc');
  }
  const t0 = Date.now();
  const peak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  const sample = () => {
    gc?.();
    const m = process.memoryUsage();
    for (const k of Object.keys(peak)) peak[k] = Math.max(peak[k], m[k]);
    appendFileSync(log, JSON.stringify({ t: (Date.now() - t0) / 1000, ...m }) + '\n');
  };
  setInterval(sample, 500).unref();
  process.on('exit', () => appendFileSync(log, JSON.stringify({ peak }) + '\n'));
}
