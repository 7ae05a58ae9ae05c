// Two builds of ddt side by side, and `dd | ssh dd`, sending from a source that is a block
// device (a loop device over the image) whose page cache is dropped before every run, as a disk
// being migrated is not in memory: for how the source is read (O_DIRECT or through the cache).
// Methods alternating, order rotating each round; per run the wall time, the machine's busy
// CPU seconds (/proc/stat: both ends and the kernel's work for them), and a cmp of the target.
// As root, with the other build in a git worktree (it uses this repo's node_modules):
//
//   git worktree add /tmp/old COMMIT && ln -s "$PWD/node_modules" /tmp/old/ && (cd /tmp/old && npm run build)
//   node --import tsx benchmarks/source-device-ab.ts /tmp/old/dist/cli/main.js [runs=5] [size_mib=2048] [fresh|same]
//
// fresh: onto a zeroed target; same: `--skip-identical` onto a target that already holds the
// image (the cost of proving identity from a cold device). A = that other build, B = this
// tree's dist/ (`npm run build` first).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { runCleanups } from '../test/harness/hooks.js';
import { attachLoop, removeTempDir, type LoopDevice } from '../test/harness/loop.js';
import { alternate, loopback, median, verifiedWire, type Loopback } from './lib/alternate.js';

const [other, runsArg = '5', sizeArg = '2048', mode = 'fresh'] = process.argv.slice(2);
if (!other || !['fresh', 'same'].includes(mode)) {
  console.error('usage: node --import tsx benchmarks/source-device-ab.ts OTHER_BUILD/dist/cli/main.js [runs] [size_mib] [fresh|same]');
  process.exit(2);
}
const mine = new URL('../dist/cli/main.js', import.meta.url).pathname;

/** Busy CPU seconds of the whole machine so far (user, nice, system, irq, softirq). */
function busy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) / 100;
}

let lb: Loopback | undefined;
let src: LoopDevice | undefined;
try {
  lb = await loopback(Number(sizeArg) * 1024 * 1024, 'mixed', { directIo: true });
  const l = lb;
  const source = await attachLoop(l.img);
  src = source;
  const fromDevice = (argv: string[]) => argv.map((a) => a.split(l.img).join(source.dev));
  const extra = mode === 'same' ? ['--skip-identical'] : [];
  const methods: Record<string, (round: number) => string[]> = {
    'dd-ssh': () => fromDevice(l.ddSsh()),
    A: (round) => fromDevice(l.ddtSend(other, `A-${round}.journal`, extra)),
    B: (round) => fromDevice(l.ddtSend(mine, `B-${round}.journal`, extra)),
  };
  if (mode === 'same') delete methods['dd-ssh']; // it would write everything: not the comparison here
  let cpu0 = 0;
  const cpu: Record<string, number[]> = {};
  const prepare = () => {
    if (mode === 'same') execFileSync('dd', [`if=${l.img}`, `of=${l.loop.dev}`, 'bs=4M', 'conv=fsync', 'status=none']);
    else execFileSync('blkdiscard', ['-z', l.loop.dev]);
    execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
    cpu0 = busy();
  };
  const times = alternate(
    l,
    methods,
    Number(runsArg),
    (name, stdout) => {
      const used = busy() - cpu0;
      (cpu[name] ??= []).push(used);
      const same = spawnSync('cmp', [l.img, l.loop.dev]).status === 0;
      if (!same) throw new Error(`${name}: the target differs from the source`);
      return `  cpu ${used.toFixed(1)} s${name === 'dd-ssh' ? '' : `  wire ${(verifiedWire(name, stdout) / 1e6).toFixed(1)} MB`}  cmp ok`;
    },
    prepare,
  );
  console.log(
    `${mode}, ${sizeArg} MiB from ${source.dev}, ${runsArg} rounds, medians: ` +
      Object.keys(times).map((n) => `${n} ${median(times[n]!).toFixed(2)} s (cpu ${median(cpu[n]!).toFixed(1)} s)`).join(', '),
  );
} finally {
  await src?.detach().catch(() => undefined);
  await lb?.loop.detach().catch(() => undefined);
  await lb?.sshd.stop();
  await runCleanups();
  if (lb) await removeTempDir(lb.work);
}
