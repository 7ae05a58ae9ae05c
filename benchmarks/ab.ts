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
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runCleanups } from '../test/harness/hooks.js';
import { attachLoop, fileOfSize, makeTempDir, removeTempDir, type Fill } from '../test/harness/loop.js';
import { startSshd } from '../test/harness/sshd.js';

const [other, runsArg = '3', sizeArg = '1024', fill = 'mixed'] = process.argv.slice(2);
if (!other) {
  console.error('usage: node --import tsx benchmarks/ab.ts OTHER_BUILD/dist/cli/main.js [runs] [size_mib] [mixed|random|sparse]');
  process.exit(2);
}
const runs = Number(runsArg);
const size = Number(sizeArg) * 1024 * 1024;
const clis: Record<string, string> = { A: other, B: new URL('../dist/cli/main.js', import.meta.url).pathname };
const extraB = (process.env.EXTRA_B ?? '').split(' ').filter(Boolean);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

const work = await makeTempDir('ddt-ab-');
try {
  const sshd = await startSshd();
  const img = join(work, `${fill}.img`);
  await fileOfSize(img, size, fill as Fill, 1);
  const target = join(work, 'target.img');
  await fileOfSize(target, size, 'zero');
  const loop = await attachLoop(target);
  const ssh = ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes'];
  const methods: Record<string, (round: number) => string[]> = {};
  if (!process.env.NO_DD) {
    methods['dd-ssh'] = () => ['bash', '-o', 'pipefail', '-c', `dd if=${img} bs=4M status=none | ssh -c aes128-gcm@openssh.com ${ssh.join(' ')} root@127.0.0.1 'dd of=${loop.dev} bs=4M conv=notrunc,fdatasync status=none'`];
  }
  for (const k of ['A', 'B']) {
    methods[k] = (round) => [process.execPath, clis[k]!, 'send', img, `root@127.0.0.1:${loop.dev}`, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath, '--yes', '--json', '--progress', 'none', '--journal', join(work, `${k}-${round}.journal`), ...(k === 'B' ? extraB : [])];
  }
  const names = Object.keys(methods);
  const times: Record<string, number[]> = {};
  for (let round = 0; round < runs; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length]!;
      execFileSync('sh', ['-c', `sync; echo 3 > /proc/sys/vm/drop_caches; cat ${img} > /dev/null`]);
      const argv = methods[name]!(round);
      const t0 = performance.now();
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
      const s = (performance.now() - t0) / 1000;
      if (r.status !== 0) throw new Error(`${name} failed (exit ${r.status}): ${r.stderr.slice(-500)}`);
      let wire = '';
      if (name !== 'dd-ssh') {
        const summary = JSON.parse(r.stdout) as { verified: number; blocks: number; bytesOnWire: number };
        if (summary.verified !== summary.blocks) throw new Error(`${name} did not verify every block`);
        wire = `  wire ${(summary.bytesOnWire / 1e6).toFixed(1)} MB`;
      }
      (times[name] ??= []).push(s);
      console.log(`round ${round + 1} ${name.padEnd(6)} ${s.toFixed(2)} s${wire}`);
    }
  }
  console.log(`${fill} ${sizeArg} MiB, ${runs} rounds, medians: ${names.map((n) => `${n} ${median(times[n]!).toFixed(2)} s`).join(', ')}`);
  await loop.detach();
  await sshd.stop();
} finally {
  await runCleanups();
  await removeTempDir(work);
}
