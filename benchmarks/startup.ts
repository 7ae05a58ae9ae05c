// Start-up on a long link: the time from spawning `ddt send` to the first burst of bulk data on
// the delay link (as benchmarks/lib/delay-link.ts sees it), next to `ssh HOST true`, for one or
// two builds, alternating. A 64 MiB random image onto a file on the far side; DDT_DEBUG's phase
// times of the last run of each build are printed too. As root:
//
//   node --import tsx benchmarks/startup.ts [runs=3] [rate=400mbit] [rtt_ms=100] [OTHER_BUILD/dist/cli/main.js]
import { spawnSync } from 'node:child_process';
import { truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCleanups } from '../test/harness/hooks.js';
import { makeTempDir, removeTempDirs } from '../test/harness/loop.js';
import { startSshd } from '../test/harness/sshd.js';
import { createDelayLink } from './lib/delay-link.js';
import { sshTrue } from './lib/link-check.js';
import { startSshdIn } from './lib/netns.js';

const [runsArg = '3', rate = '400mbit', rttArg = '100', other] = process.argv.slice(2);
const mine = new URL('../dist/cli/main.js', import.meta.url).pathname;
const builds: Record<string, string> = { B: mine, ...(other ? { A: other } : {}) };
const work = await makeTempDir('ddt-startup-');
const link = await createDelayLink({ rate, rttMs: Number(rttArg), work, log: () => undefined });
try {
  const sshd = await startSshd();
  const ns = await startSshdIn(link, sshd, 2222, 'startup');
  const src = join(work, 'src.img');
  spawnSync('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', 'count=64', 'status=none']);
  const tgt = join(work, 'tgt.img');
  await writeFile(tgt, '');
  await truncate(tgt, 64 << 20);
  const firsts: Record<string, number[]> = Object.fromEntries(Object.keys(builds).map((k) => [k, []]));
  const trues: number[] = [];
  let phases: Record<string, string> = {};
  for (let round = 0; round < Number(runsArg); round++) {
    trues.push(...sshTrue(link, ns.sshArgs(), `${sshd.user}@${link.addrB}`, 1));
    for (const [name, cli] of Object.entries(builds)) {
      const t = process.hrtime.bigint();
      const args = [cli, 'send', src, `${sshd.user}@${link.addrB}:${tgt}`, '-p', '2222', '-i', ns.clientKeyPath, '--known-hosts', ns.knownHostsPath, '--yes', '--json', '--progress', 'none', '--journal', join(work, `${name}-${round}.journal`)];
      const r = spawnSync('ip', ['netns', 'exec', link.nsA, process.execPath, ...args], { env: { ...process.env, DDT_DEBUG: '1' }, encoding: 'utf8' });
      const first = link.firstDataAfter(t);
      if (r.status !== 0 || first === undefined) throw new Error(`${name}: exit ${r.status}: ${r.stderr.trim().split('\n').pop()}`);
      firsts[name]!.push(first);
      phases = { ...phases, [name]: r.stderr.split('\n').filter((l) => l.startsWith('ddt: +')).join('\n') };
      console.log(`round ${round + 1} ${name}: first data ${first.toFixed(2)} s`);
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  console.log(`ssh true ${trues.map((x) => x.toFixed(2)).join(' ')} (median ${med(trues).toFixed(2)} s)`);
  for (const [name, xs] of Object.entries(firsts)) console.log(`${name} (${builds[name]}): first data ${xs.map((x) => x.toFixed(2)).join(' ')} (median ${med(xs).toFixed(2)} s = ${(med(xs) / med(trues)).toFixed(2)} × ssh true)\n${phases[name]}`);
  await ns.stop();
  await sshd.stop();
} finally {
  link.close();
  await removeTempDirs();
  await runCleanups();
}
