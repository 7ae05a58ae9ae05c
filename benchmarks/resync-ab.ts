// Proving an unchanged image identical, two builds of ddt side by side: `ddt send
// --skip-identical` of an image onto a loop device that already holds it, over a private loopback
// sshd, next to `read-both` (the image read once on each side at once, as the bench's method of
// that name: `dd` here, `ssh … dd iflag=direct` of the loop device's backing file there). Caches
// as the bench handles them: before every run the target's data is written again (`conv=fsync`)
// and the source read into the page cache; the methods rotate each round. Per ddt run: the wall
// time, the pipeline's (the summary's `seconds`) and the rest, the fixed part (start, connection,
// helper, lock, clean-up). As root, with the other build in a git worktree (see ab.ts):
//
//   node --import tsx benchmarks/resync-ab.ts OTHER_BUILD/dist/cli/main.js [runs=5] [size_mib=2048]
//
// A = that other build, B = this tree's dist/ (`npm run build` first).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { runCleanups } from '../test/harness/hooks.js';
import { removeTempDir } from '../test/harness/loop.js';
import { loopback, median, verifiedWire, type Loopback } from './lib/alternate.js';

const [other, runsArg = '5', sizeArg = '2048'] = process.argv.slice(2);
if (!other) {
  console.error('usage: node --import tsx benchmarks/resync-ab.ts OTHER_BUILD/dist/cli/main.js [runs] [size_mib]');
  process.exit(2);
}
const mine = new URL('../dist/cli/main.js', import.meta.url).pathname;
const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

let lb: Loopback | undefined;
try {
  lb = await loopback(Number(sizeArg) * 2 ** 20, 'mixed');
  const l = lb;
  const backing = readFileSync(`/sys/block/${l.loop.dev.split('/').pop()}/loop/backing_file`, 'utf8').trim();
  const ssh = ['-c', 'aes128-gcm@openssh.com', '-p', String(l.sshd.port), '-i', l.sshd.clientKeyPath, '-o', `UserKnownHostsFile=${l.sshd.knownHostsPath}`, '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes'];
  const methods: Record<string, (round: number) => string[]> = {
    A: (round) => l.ddtSend(other, `a-${round}.journal`, ['--skip-identical']),
    B: (round) => l.ddtSend(mine, `b-${round}.journal`, ['--skip-identical']),
    'read-both': () => ['bash', '-o', 'pipefail', '-c', `dd if=${sh(l.img)} of=/dev/null bs=4M status=none & ssh ${ssh.map(sh).join(' ')} root@127.0.0.1 ${sh(`dd if=${sh(backing)} of=/dev/null bs=4M iflag=direct status=none`)}; r=$?; wait $! && exit $r`],
  };
  const names = Object.keys(methods);
  const walls: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const fixed: Record<string, number[]> = { A: [], B: [] };
  for (let round = 0; round < Number(runsArg); round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]!;
      execFileSync('dd', [`if=${l.img}`, `of=${l.loop.dev}`, 'bs=4M', 'conv=fsync', 'status=none']);
      execFileSync('dd', [`if=${l.img}`, 'of=/dev/null', 'bs=4M', 'status=none']);
      const argv = methods[name]!(round + 1);
      const t0 = performance.now();
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
      const s = (performance.now() - t0) / 1000;
      if (r.status !== 0) throw new Error(`${name} failed (exit ${r.status}): ${r.stderr.slice(-500)}`);
      walls[name]!.push(s);
      let note = '';
      if (name !== 'read-both') {
        const wire = verifiedWire(name, r.stdout);
        if (wire !== 0) throw new Error(`${name} sent ${wire} bytes onto an identical target`);
        const pipeline = (JSON.parse(r.stdout) as { seconds: number }).seconds;
        fixed[name]!.push(s - pipeline);
        note = `  pipeline ${pipeline.toFixed(2)} s, fixed ${(s - pipeline).toFixed(2)} s`;
      }
      console.log(`round ${round + 1} ${name.padEnd(9)} ${s.toFixed(2)} s${note}`);
    }
  }
  const both = median(walls['read-both']!);
  for (const n of names) {
    console.log(`median ${n.padEnd(9)} ${median(walls[n]!).toFixed(2)} s = ${(median(walls[n]!) / both).toFixed(2)} × read-both${fixed[n] ? `, fixed part ${median(fixed[n]!).toFixed(2)} s` : ''}`);
  }
} finally {
  await lb?.loop.detach().catch(() => undefined);
  await lb?.sshd.stop();
  if (lb) await removeTempDir(lb.work);
  await runCleanups();
}
