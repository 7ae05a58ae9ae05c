// `ddt send` (defaults, every block verified) against `dd bs=4M | ssh -c aes128-gcm dd
// conv=notrunc,fdatasync` on one image onto a loop device over a private loopback sshd: the two
// alternating, page cache dropped and the image read back in before every run, median wall
// time of N runs each, and the ratio. As root, after `npm run build`:
//
//   node --import tsx benchmarks/send-vs-ddssh.ts [runs=3] [size_mib=1024] [mixed|random|sparse] [extra ddt args...]
import { runCleanups } from '../test/harness/hooks.js';
import { removeTempDir, sha256File, type Fill } from '../test/harness/loop.js';
import { alternate, loopback, median, verifiedWire, type Loopback } from './lib/alternate.js';

const [runsArg = '3', sizeArg = '1024', fill = 'mixed', ...extra] = process.argv.slice(2);
const runs = Number(runsArg);
const size = Number(sizeArg) * 1024 * 1024;
const cli = new URL('../dist/cli/main.js', import.meta.url).pathname;

let lb: Loopback | undefined;
try {
  lb = await loopback(size, fill as Fill);
  const l = lb;
  const times = alternate(l, { 'dd-ssh': () => l.ddSsh(), ddt: (round) => l.ddtSend(cli, `run-${round}.journal`, extra) }, runs, (name, stdout) => {
    if (name === 'ddt') verifiedWire(name, stdout);
    return '';
  });
  if ((await sha256File(l.loop.dev, size)) !== (await sha256File(l.img))) throw new Error('target differs from the image');
  const a = median(times['dd-ssh']!);
  const d = median(times.ddt!);
  console.log(`${fill} ${sizeArg} MiB, ${runs} rounds: dd|ssh median ${a.toFixed(2)} s, ddt send median ${d.toFixed(2)} s, ratio ${(d / a).toFixed(2)} (every block verified; target identical)`);
  await l.loop.detach();
  await l.sshd.stop();
} finally {
  await runCleanups();
  if (lb) await removeTempDir(lb.work);
}
