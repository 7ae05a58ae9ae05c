// Two builds of ddt side by side (and `dd | ssh dd`, unless NO_DD=1): the same image onto a loop
// device over a private loopback sshd, the methods alternating (order rotating each round),
// page cache dropped and the image read back in before every run; per run the wall time and
// ddt's bytes on the wire, then the medians. For "did this change help" on this noisy machine.
// As root, with the other build in a git worktree (it uses this repo's node_modules):
//
//   git worktree add /tmp/old COMMIT && ln -s "$PWD/node_modules" /tmp/old/ && (cd /tmp/old && npm run build)
//   node --import tsx benchmarks/ab.ts /tmp/old/dist/cli/main.js [runs=3] [size_mib=1024] [mixed|random|sparse]
//
// A = that other build, B = this tree's dist/ (`npm run build` first). EXTRA_B='--args …' adds
// arguments to B's command line only.
import { runCleanups } from '../test/harness/hooks.js';
import { removeTempDir, type Fill } from '../test/harness/loop.js';
import { alternate, loopback, median, verifiedWire, type Loopback } from './lib/alternate.js';

const [other, runsArg = '3', sizeArg = '1024', fill = 'mixed'] = process.argv.slice(2);
if (!other) {
  console.error('usage: node --import tsx benchmarks/ab.ts OTHER_BUILD/dist/cli/main.js [runs] [size_mib] [mixed|random|sparse]');
  process.exit(2);
}
const runs = Number(runsArg);
const size = Number(sizeArg) * 1024 * 1024;
const mine = new URL('../dist/cli/main.js', import.meta.url).pathname;
const extraB = (process.env.EXTRA_B ?? '').split(' ').filter(Boolean);

let lb: Loopback | undefined;
try {
  lb = await loopback(size, fill as Fill);
  const l = lb;
  const methods: Record<string, (round: number) => string[]> = {};
  if (!process.env.NO_DD) methods['dd-ssh'] = () => l.ddSsh();
  methods.A = (round) => l.ddtSend(other, `A-${round}.journal`);
  methods.B = (round) => l.ddtSend(mine, `B-${round}.journal`, extraB);
  const times = alternate(l, methods, runs, (name, stdout) => (name === 'dd-ssh' ? '' : `  wire ${(verifiedWire(name, stdout) / 1e6).toFixed(1)} MB`));
  console.log(`${fill} ${sizeArg} MiB, ${runs} rounds, medians: ${Object.keys(times).map((n) => `${n} ${median(times[n]!).toFixed(2)} s`).join(', ')}`);
  await l.loop.detach();
  await l.sshd.stop();
} finally {
  await runCleanups();
  if (lb) await removeTempDir(lb.work);
}
