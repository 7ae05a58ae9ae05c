// Where does the time go? One run per method against a private loopback sshd and a loop
// device, under a profiler, printed as text (the evidence behind RESULTS.md's notes):
//
//   node --import tsx benchmarks/profile.ts [--fill random|mixed|sparse] [--mib 1024]
//        [--methods dd-ssh,ddt,ddt-stream,ddt-stream-none,ddt-sftp,ddt-resync] [--tool perf|execs|strace]
//        [--cpu-prof] [--no-build]
//
// --tool perf (default): `perf record -g` on the local command and, with inheritance, on the
//   sshd listener (so every session, dd and xxhsum on the "remote" side), reported as samples
//   per process name and per symbol (499 Hz: samples / 499 ≈ CPU seconds).
// --tool execs: `strace -f -e trace=execve` on sshd: which programs the remote side starts, how often.
// --tool strace: `strace -f -c` on sshd: remote syscall counts and times.
// --cpu-prof: ddt also runs with `node --cpu-prof`; prints its main thread's self time by package and function.
// ddt-resync: the target first gets the source's bytes, then `ddt send -b 1M --skip-identical`.
// As root; everything it creates is removed at the end and on Ctrl-C.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { registerCleanup, runCleanups } from '../test/harness/hooks.js';
import { attachLoop, fileOfSize, makeTempDir } from '../test/harness/loop.js';
import { startSshd } from '../test/harness/sshd.js';
import { cpuProfileTop } from './lib/cpuprof.js';
import { snapshotCli } from './lib/snapshot.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const { values: o } = parseArgs({
  options: {
    fill: { type: 'string', default: 'random' },
    mib: { type: 'string', default: '1024' },
    methods: { type: 'string', default: 'dd-ssh,ddt,ddt-stream-none' },
    tool: { type: 'string', default: 'perf' },
    'cpu-prof': { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const out = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 << 20 });

const cli = snapshotCli(root, join(here, `.ddt-snapshot-profile-${process.pid}`), { noBuild: o['no-build'] });

const mib = Number(o.mib);
const s = await startSshd();
const d = await makeTempDir('ddt-profile-');
const src = join(d, 'src.img');
await fileOfSize(src, mib * 2 ** 20, o.fill as 'random', 7);
execFileSync('truncate', ['-s', `${mib}M`, join(d, 't.img')]);
const loop = await attachLoop(join(d, 't.img'));
execFileSync('dd', [`if=${src}`, 'of=/dev/null', 'bs=4M', 'status=none']);
const profDir = join(d, 'cpuprof');
const ddt = (name: string, ...extra: string[]) => [
  process.execPath, ...(o['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, name)}`] : []), cli, 'send', src, `${s.user}@${s.host}:${loop.dev}`,
  '-p', String(s.port), '-i', s.clientKeyPath, '--known-hosts', s.knownHostsPath, '--yes', '--json', '--progress', 'none', '--journal', join(d, `${name}.journal`), ...extra,
];
const sshCmd = ['ssh', '-c', 'aes128-gcm@openssh.com', ...s.sshArgs()].join(' ');
const methods: Record<string, string[]> = {
  'dd-ssh': ['bash', '-c', `dd if=${src} bs=4M status=none | ${sshCmd} ${s.user}@${s.host} 'dd of=${loop.dev} bs=4M conv=notrunc,fdatasync status=none'`],
  ddt: ddt('ddt'),
  'ddt-stream': ddt('ddt-stream', '--via', 'stream'),
  'ddt-stream-none': ddt('ddt-stream-none', '--via', 'stream', '--compress', 'none'),
  'ddt-sftp': ddt('ddt-sftp', '--via', 'sftp'),
  'ddt-resync': ddt('ddt-resync', '-b', '1M', '--skip-identical'),
};
const report = (file: string, sort: string, lines: number, extra: string[] = []) =>
  out('perf', ['report', '-i', file, '--no-children', '--sort', sort, '--stdio', '-n', '-g', 'none', '--percent-limit', '1.5', ...extra])
    .split('\n').filter((l) => l.trim() && !l.startsWith('#')).slice(0, lines).join('\n');

try {
  for (const name of o.methods!.split(',')) {
    const argv = methods[name];
    if (!argv) throw new Error(`unknown method ${name}: ${Object.keys(methods).join(', ')}`);
    if (name === 'ddt-resync') execFileSync('dd', [`if=${src}`, `of=${loop.dev}`, 'bs=4M', 'conv=fsync', 'status=none']);
    const remoteFile = join(d, `remote-${name}.data`);
    const localFile = join(d, `local-${name}.data`);
    const tracer =
      o.tool === 'perf' ? spawn('perf', ['record', '-F', '499', '-g', '-q', '-p', String(s.pid), '-o', remoteFile], { stdio: 'ignore' })
      : o.tool === 'execs' ? spawn('strace', ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', remoteFile, '-p', String(s.pid)], { stdio: 'ignore' })
      : spawn('strace', ['-f', '-c', '-o', remoteFile, '-p', String(s.pid)], { stdio: 'ignore' });
    const stopTracer = registerCleanup(() => tracer.kill('SIGKILL'));
    await sleep(1500);
    const t0 = Date.now();
    const r = spawnSync(o.tool === 'perf' ? 'perf' : argv[0]!, o.tool === 'perf' ? ['record', '-F', '499', '-g', '-q', '-o', localFile, '--', ...argv] : argv.slice(1), { encoding: 'utf8' });
    const wall = (Date.now() - t0) / 1000;
    await sleep(2000);
    tracer.kill('SIGINT');
    await new Promise((res) => tracer.once('exit', res));
    stopTracer();
    console.log(`\n======== ${name}: exit ${r.status}, ${wall.toFixed(1)} s under ${o.tool}; ${argv.join(' ').slice(0, 400)}`);
    if (o.tool === 'perf') {
      console.log('--- local command, samples by process\n' + report(localFile, 'comm', 8));
      console.log('--- local command, by symbol\n' + report(localFile, 'dso,sym', 16));
      console.log('--- remote side (sshd and everything it started), samples by process\n' + report(remoteFile, 'comm', 8));
      console.log('--- remote side, by symbol\n' + report(remoteFile, 'dso,sym', 16));
    } else if (o.tool === 'execs') {
      const counts = new Map<string, number>();
      for (const m of readFileSync(remoteFile, 'utf8').matchAll(/execve\("([^"]+)", \[([^\]]*)\]/g)) {
        const key = `${m[1]} ${m[2]!.split(', ').slice(1, 3).join(' ').replace(/\d{5,}/g, 'N')}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      console.log(`programs started on the remote side: ${[...counts.values()].reduce((a, b) => a + b, 0)}`);
      for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${String(n).padStart(6)}  ${k}`);
    } else {
      console.log(readFileSync(remoteFile, 'utf8').split('\n').slice(0, 24).join('\n'));
    }
    if (o['cpu-prof'] && name.startsWith('ddt')) {
      const dir = join(profDir, name);
      for (const f of readdirSync(dir)) console.log(`--- ddt main thread (node --cpu-prof ${f})\n${cpuProfileTop(join(dir, f))}`);
    }
  }
} finally {
  await loop.detach();
  await s.stop();
  runCleanups();
}
