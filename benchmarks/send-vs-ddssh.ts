// `ddt send` (defaults, every block verified) against `dd bs=4M | ssh -c aes128-gcm dd
// conv=notrunc,fdatasync` on one image onto a loop device over a private loopback sshd: the two
// alternating, page cache dropped and the image read back in before every run, median wall
// time of N runs each, and the ratio (issue #3's measurement). As root, after `npm run build`:
//
//   node --import tsx benchmarks/send-vs-ddssh.ts [runs=3] [size_mib=1024] [mixed|random|sparse] [extra ddt args...]
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runCleanups } from '../test/harness/hooks.js';
import { attachLoop, fileOfSize, makeTempDir, removeTempDir, sha256File, type Fill } from '../test/harness/loop.js';
import { startSshd } from '../test/harness/sshd.js';

const [runsArg = '3', sizeArg = '1024', fill = 'mixed', ...extra] = process.argv.slice(2);
const runs = Number(runsArg);
const size = Number(sizeArg) * 1024 * 1024;
const cli = new URL('../dist/cli/main.js', import.meta.url).pathname;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

const work = await makeTempDir('ddt-bench-send-');
try {
  const sshd = await startSshd();
  const img = join(work, `${fill}.img`);
  await fileOfSize(img, size, fill as Fill, 1);
  const target = join(work, 'target.img');
  await fileOfSize(target, size, 'zero');
  const loop = await attachLoop(target);
  const ssh = ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '-o', `UserKnownHostsFile=${sshd.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes'];
  const methods: Record<string, (round: number) => string[]> = {
    'dd-ssh': () => ['bash', '-o', 'pipefail', '-c', `dd if=${img} bs=4M status=none | ssh -c aes128-gcm@openssh.com ${ssh.join(' ')} root@127.0.0.1 'dd of=${loop.dev} bs=4M conv=notrunc,fdatasync status=none'`],
    ddt: (round) => [process.execPath, cli, 'send', img, `root@127.0.0.1:${loop.dev}`, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath, '--yes', '--json', '--progress', 'none', '--journal', join(work, `run-${round}.journal`), ...extra],
  };
  const times: Record<string, number[]> = { 'dd-ssh': [], ddt: [] };
  for (let round = 1; round <= runs; round++) {
    const order = round % 2 ? ['dd-ssh', 'ddt'] : ['ddt', 'dd-ssh'];
    for (const name of order) {
      execFileSync('sh', ['-c', `sync; echo 3 > /proc/sys/vm/drop_caches; cat ${img} > /dev/null`]);
      const argv = methods[name]!(round);
      const t0 = performance.now();
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 });
      const s = (performance.now() - t0) / 1000;
      if (r.status !== 0) throw new Error(`${name} failed (exit ${r.status}): ${r.stderr.slice(-500)}`);
      if (name === 'ddt' && (JSON.parse(r.stdout) as { verified: number; blocks: number }).verified !== (JSON.parse(r.stdout) as { blocks: number }).blocks) {
        throw new Error('ddt did not verify every block');
      }
      times[name]!.push(s);
      console.log(`round ${round} ${name.padEnd(6)} ${s.toFixed(2)} s`);
    }
  }
  if ((await sha256File(loop.dev, size)) !== (await sha256File(img))) throw new Error('target differs from the image');
  const a = median(times['dd-ssh']!);
  const d = median(times.ddt!);
  console.log(`${fill} ${sizeArg} MiB, ${runs} rounds: dd|ssh median ${a.toFixed(2)} s, ddt send median ${d.toFixed(2)} s, ratio ${(d / a).toFixed(2)} (every block verified; target identical)`);
  await loop.detach();
  await sshd.stop();
} finally {
  await runCleanups();
  await removeTempDir(work);
}
