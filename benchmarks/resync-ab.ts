// Proving an unchanged image identical, two builds of ddt side by side: `ddt send
// --skip-identical` of an image onto a loop device that already holds it, over a private loopback
// sshd, next to `read-both` (the image read once on each side at once, as the bench's method of
// that name: `dd` here, `ssh … dd iflag=direct` of the loop device's backing file there). Caches
// as the bench handles them: before every run the target's data is written again (`conv=fsync`)
// and the source read into the page cache; the methods rotate each round. Per ddt run: the wall
// time, the pipeline's (the summary's `seconds`) and the rest, the fixed part (start, connection,
// helper, lock, clean-up). As root, with the other build in a git worktree (see ab.ts):
//
//   node --import tsx benchmarks/resync-ab.ts OTHER_BUILD/dist/cli/main.js [runs=5] [size_mib=2048] [RATE,RTT_MS]
//
// A = that other build, B = this tree's dist/ (`npm run build` first). With `RATE,RTT_MS` (e.g.
// `20mbit,40`) every method connects over a link of that rate and round trip (tbf and the delay
// line between two network namespaces, as the bench's latency scenarios) to an sshd on the far
// side, instead of the loopback one: what the round trips and uploads of a run cost on a slow link.
import { execFileSync } from 'node:child_process';
import { runCleanups } from '../test/harness/hooks.js';
import { removeTempDir } from '../test/harness/loop.js';
import { alternate, loopback, median, verifiedWire, type Loopback } from './lib/alternate.js';
import { createDelayLink, type DelayLink } from './lib/delay-link.js';
import { readBothSides, type Endpoint, type RunEnv } from './lib/methods.js';
import { startSshdIn, type NetnsSshd } from './lib/netns.js';

const [other, runsArg = '5', sizeArg = '2048', linkArg] = process.argv.slice(2);
if (!other) {
  console.error('usage: node --import tsx benchmarks/resync-ab.ts OTHER_BUILD/dist/cli/main.js [runs] [size_mib] [RATE,RTT_MS]');
  process.exit(2);
}
const mine = new URL('../dist/cli/main.js', import.meta.url).pathname;

let lb: Loopback | undefined;
let far: { link: DelayLink; sshd: NetnsSshd } | undefined;
try {
  const size = Number(sizeArg) * 2 ** 20;
  lb = await loopback(size, 'mixed', { directIo: true });
  const l = lb;
  let ep: Endpoint = l.endpoint;
  if (linkArg) {
    const [rate = '', rtt = ''] = linkArg.split(',');
    const link = await createDelayLink({ rate, rttMs: Number(rtt), work: l.work, log: (line) => console.log(line) });
    far = { link, sshd: await startSshdIn(link, l.sshd, 2222, 'resync-ab') };
    const s = far.sshd;
    ep = { host: s.host, port: s.port, user: l.sshd.user, clientKeyPath: s.clientKeyPath, knownHostsPath: s.knownHostsPath, sshArgs: s.sshArgs(), exec: link.execA };
    console.log(`over ${link.rate} with ${link.rttMs} ms RTT: ${link.commands.join('; ')}`);
  }
  // The bench's own read-both command line (it reads ep, source and device).
  const env: RunEnv = { ep, cli: mine, source: l.img, size, device: l.loop.dev, rsyncTarget: '', journal: '', work: l.work, remoteDir: '' };
  const methods: Record<string, (round: number) => string[]> = {
    A: (round) => l.ddtSend(other, `a-${round}.journal`, ['--skip-identical'], ep),
    B: (round) => l.ddtSend(mine, `b-${round}.journal`, ['--skip-identical'], ep),
    'read-both': () => readBothSides.argv(env),
  };
  const fixed: Record<string, number[]> = { A: [], B: [] };
  const check = (name: string, stdout: string, wall: number): string => {
    if (name === 'read-both') return '';
    const wire = verifiedWire(name, stdout);
    if (wire !== 0) throw new Error(`${name} sent ${wire} bytes onto an identical target`);
    const pipeline = (JSON.parse(stdout) as { seconds: number }).seconds;
    fixed[name]!.push(wall - pipeline);
    return `  pipeline ${pipeline.toFixed(2)} s, fixed ${(wall - pipeline).toFixed(2)} s`;
  };
  // The bench's cache handling: the target's data written again, the source in the page cache.
  const prepare = () => {
    execFileSync('dd', [`if=${l.img}`, `of=${l.loop.dev}`, 'bs=4M', 'conv=fsync', 'status=none']);
    execFileSync('dd', [`if=${l.img}`, 'of=/dev/null', 'bs=4M', 'status=none']);
  };
  const walls = alternate(l, methods, Number(runsArg), check, prepare);
  const both = median(walls['read-both']!);
  for (const [n, w] of Object.entries(walls)) {
    console.log(`median ${n.padEnd(9)} ${median(w).toFixed(2)} s = ${(median(w) / both).toFixed(2)} × read-both${fixed[n] ? `, fixed part ${median(fixed[n]!).toFixed(2)} s` : ''}`);
  }
} finally {
  await far?.sshd.stop().catch(() => undefined);
  far?.link.close();
  await lb?.loop.detach().catch(() => undefined);
  await lb?.sshd.stop();
  if (lb) await removeTempDir(lb.work);
  await runCleanups();
}
