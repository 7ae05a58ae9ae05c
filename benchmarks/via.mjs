// ddt send --via sftp vs --via stream (which one should be the default): a mixed image onto a
// loop device over the test harness's private sshd on 127.0.0.1, the two alternating, page cache
// dropped before every run, median wall time of N runs each. Everything else at ddt's defaults.
// Also CPU seconds (ddt's own via /usr/bin/time; the server's: sshd, sftp-server, the helper
// and its dd, from the sshd listener's reaped children): on a shared, busy machine wall time
// swings with other people's load, CPU time much less.
//
// Usage (as root, after npm run build):
//   node --import tsx benchmarks/via.mjs [runs=3] [size_mib=1024] [extra ddt args...]
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { startSshd } from '../test/harness/sshd.ts';
import { attachLoop, makeTempDir, removeTempDir, sha256File } from '../test/harness/loop.ts';

const [runsArg = '3', sizeArg = '1024', ...extra] = process.argv.slice(2);
const runs = Number(runsArg);
const sizeMib = Number(sizeArg);
const cli = new URL('../dist/cli/main.js', import.meta.url).pathname;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds of a process plus its reaped descendants (/proc/PID/stat utime stime cutime cstime). */
function treeCpu(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

const work = await makeTempDir('ddt-bench-via-');
const sshd = await startSshd();
let loop;
try {
  const image = join(work, 'src.img');
  const made = spawnSync(process.execPath, [new URL('./make-image.mjs', import.meta.url).pathname, image, String(sizeMib), 'mixed'], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error('make-image failed');
  const backing = join(work, 'target.img');
  writeFileSync(backing, '');
  spawnSync('truncate', ['-s', `${sizeMib}M`, backing]);
  loop = await attachLoop(backing);
  const want = await sha256File(image);
  const times = { sftp: [], stream: [] };
  const cpu = { sftp: [], stream: [] };
  const timeFile = join(work, 'time.txt');
  for (let i = 1; i <= runs; i++) {
    // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
    for (const via of i % 2 ? ['sftp', 'stream'] : ['stream', 'sftp']) {
      spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
      const args = ['send', image, `root@127.0.0.1:${loop.dev}`, '-p', String(sshd.port), '-i', sshd.clientKeyPath, '--known-hosts', sshd.knownHostsPath];
      args.push('--via', via, '--yes', '--json', '--progress', 'none', '--journal', join(work, `${via}-${i}.journal`), ...extra);
      const server0 = treeCpu(sshd.pid);
      const t0 = process.hrtime.bigint();
      const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, process.execPath, cli, ...args], { encoding: 'utf8' });
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.status !== 0) throw new Error(`${via} run ${i} exited ${r.status}: ${r.stderr}`);
      for (let n = 0; sshd.connectionPids().length > 0 && n < 200; n++) await sleep(50); // sessions reaped
      const [user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
      const used = { ddt: user + sys, server: treeCpu(sshd.pid) - server0 };
      cpu[via].push(used.ddt + used.server);
      const s = JSON.parse(r.stdout.trim().split('\n').at(-1));
      if ((await sha256File(loop.dev, sizeMib * 1024 * 1024)) !== want) throw new Error(`${via} run ${i}: target differs from the image`);
      times[via].push(wall);
      console.log(
        `run ${i} ${via.padEnd(6)} ${wall.toFixed(2)} s wall (${s.seconds.toFixed(2)} s in the pipeline), CPU ${used.ddt.toFixed(1)} s ddt + ${used.server.toFixed(1)} s server, ${s.verified}/${s.blocks} blocks verified`,
      );
      // Next run must really write: scribble over the target.
      spawnSync('dd', ['if=/dev/urandom', `of=${loop.dev}`, 'bs=1M', 'count=16', 'conv=fsync', 'status=none']);
    }
  }
  const m = { sftp: median(times.sftp), stream: median(times.stream) };
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`machine: ${cpus().length} cores, ${cpus()[0]?.model ?? '?'}, load average now ${load}; ${sizeMib} MiB mixed image → loop device over loopback sshd${extra.length ? `; ddt ${extra.join(' ')}` : ''}`);
  for (const via of ['sftp', 'stream']) {
    console.log(
      `--via ${via.padEnd(6)}: runs ${times[via].map((t) => t.toFixed(2)).join(' ')} s, median ${m[via].toFixed(2)} s (${(sizeMib / m[via]).toFixed(0)} MiB/s); CPU median ${median(cpu[via]).toFixed(1)} s`,
    );
  }
  console.log(`ratio sftp/stream: ${(m.sftp / m.stream).toFixed(2)}`);
} finally {
  await loop?.detach();
  await sshd.stop();
  await removeTempDir(work);
}
