// Runs one scenario: its source image, a loop device as the target, then `runs` rounds in
// which every method runs once (the order rotates each round, so no method always goes first
// on a warm or cold machine), each measured by measure.ts. The first round also checks that
// the target holds exactly the source afterwards (cmp).

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { open, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { attachLoop } from '../../test/harness/loop.js';
import { measure, type Measured, type Server } from './measure.js';
import { ddtSummary, type Endpoint, type Method, type RunEnv } from './methods.js';
import { KILL_RESUME_ID, MiB, type ImageSpec, type Scenario } from './scenarios.js';
import type { RunRecord } from './records.js';
import { allocatedBytes, sparseIdentical } from './sparse-target.js';

const execFileP = promisify(execFile);

export interface ScenarioContext {
  ep: Endpoint;
  server: Server;
  cli: string;
  work: string;
  runs: number;
  check: boolean;
  image(spec: ImageSpec): Promise<string>;
  tcpPort?: number;
  linkTxBytes?: () => number;
  /** called before a run; what it returns is called after it and gives the run's `latency` */
  probe?: () => (r: Measured, env: RunEnv) => NonNullable<RunRecord['latency']>;
  log(line: string): void;
}

/** argv as a shell command line; a `-c` script goes in double quotes when that needs no escapes. */
export const shellQuote = (argv: string[]) =>
  argv
    .map((a, i) => {
      if (/^[\w@%+=:,./-]+$/.test(a)) return a;
      if (argv[i - 1] === '-c' && !/["$`\\!]/.test(a)) return `"${a}"`;
      return `'${a.replace(/'/g, `'\\''`)}'`;
    })
    .join(' ');

async function sh(cmd: string, args: string[]): Promise<void> {
  await execFileP(cmd, args, { maxBuffer: 64 * MiB });
}

async function identical(a: string, b: string, size: number): Promise<boolean> {
  return execFileP('cmp', ['-s', '-n', String(size), a, b]).then(
    () => true,
    () => false,
  );
}

/** xorshift32 for the choice of changed units: deterministic for a seed. */
function xorshift(seed: number): () => number {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

function units(total: number, count: number, seed: number): number[] {
  const next = xorshift(seed);
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(next() % total);
  return [...chosen].sort((p, q) => p - q);
}

/** Runs of 1–32 units starting at random units until `count` units are chosen (a live VM disk's changes). */
function clusteredUnits(total: number, count: number, seed: number): number[] {
  const next = xorshift(seed);
  const chosen = new Set<number>();
  while (chosen.size < count) {
    const start = next() % total;
    const len = 1 + (next() % 32);
    for (let u = start; u < Math.min(total, start + len) && chosen.size < count; u++) chosen.add(u);
  }
  return [...chosen].sort((p, q) => p - q);
}

/** The re-sync scenario's old target: the source with `fraction` of its units overwritten by random bytes. */
async function makeOld(source: string, size: number, spec: NonNullable<Scenario['resync']>, path: string): Promise<number> {
  const { unitBytes: unit, fraction } = spec;
  await sh('cp', ['--sparse=always', source, path]);
  const total = Math.floor(size / unit);
  const count = fraction === 0 ? 0 : Math.max(1, Math.round(total * fraction));
  const fh = await open(path, 'r+');
  try {
    const { randomBytes } = await import('node:crypto');
    for (const u of spec.clustered ? clusteredUnits(total, count, 99) : units(total, count, 99)) await fh.write(randomBytes(unit), 0, unit, u * unit);
  } finally {
    await fh.close();
  }
  return count;
}

async function jobHeader(journal: string): Promise<RunRecord['job']> {
  try {
    const fh = await open(journal, 'r');
    try {
      const buf = Buffer.alloc(65536);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      const h = JSON.parse(buf.subarray(0, bytesRead).toString('utf8').split('\n')[0]!) as Record<string, unknown>;
      const options = h.options as Record<string, unknown> | undefined;
      // The data path is the header's `path.name` (older headers had `via` and `engine`).
      const path = (h.path as { name?: string } | undefined)?.name;
      const via = path ?? (h.via as string | undefined);
      return { via, engine: path === 'rsync' ? 'rsync' : (h.engine as string | undefined), blockSize: h.blockSize as number | undefined, options };
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}

function rotate<T>(items: T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function record(sc: Scenario, m: Method, round: number, argv: string[], r: Measured, env: RunEnv): RunRecord {
  const summary = m.family === 'ddt' ? ddtSummary(r.stdout) : undefined;
  let error = r.exitCode === 0 ? m.check?.(r.stdout) : `exit ${r.exitCode ?? r.signal}: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 300)}`;
  const bytesOnWire = m.bytesOnWire(r.stdout, env);
  if (!error && !Number.isFinite(bytesOnWire)) error = 'no byte count in its output';
  return {
    scenario: sc.id,
    method: m.id,
    round,
    ok: !error,
    ...(error ? { error } : {}),
    wall: r.wall,
    cpu: r.cpuUser + r.cpuSys,
    cpuUser: r.cpuUser,
    cpuSys: r.cpuSys,
    remoteCpu: r.remoteCpu,
    rssMiB: r.rssMiB,
    connsOpened: r.connsOpened,
    connsPeak: r.connsPeak,
    bytesOnWire,
    ...(summary ? { summary } : {}),
    argv,
  };
}

/** Percent of the job's blocks the journal records as verified (0 while it has no header). */
function verifiedPercent(journal: string, size: number): number {
  let text = '';
  try {
    text = readFileSync(journal, 'utf8');
  } catch {
    return 0;
  }
  const lines = text.split('\n');
  let blockSize = 0;
  const verified = new Set<number>();
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    try {
      const r = JSON.parse(line) as { type?: string; blockSize?: number; block?: number; state?: string };
      if (r.type === 'job') blockSize = r.blockSize ?? 0;
      else if (r.type === 'block' && r.state === 'verified' && r.block !== undefined) verified.add(r.block);
    } catch {
      // a line being written
    }
  }
  return blockSize ? (100 * verified.size) / Math.ceil(size / blockSize) : 0;
}

async function killAndResume(sc: Scenario, m: Method, env: RunEnv, ctx: ScenarioContext, round: number): Promise<RunRecord> {
  const argv = m.argv(env);
  argv[argv.indexOf('--progress') + 1] = 'json';
  let percent = 0;
  let wire = 0;
  // The kill comes from the journal (polled every 50 ms: verified blocks ≥ killAtPercent), not
  // from progress events, which arrive once a second and can miss the middle of a short run.
  // The last progress event before the kill gives the payload of the blocks finished by then.
  const first = await measure(argv, ctx.server, {
    timeFile: join(ctx.work, 'time.txt'),
    timeoutMs: 30 * 60_000,
    killWhen: (line) => {
      try {
        const e = JSON.parse(line) as { type?: string; bytesWire?: number };
        if (e.type === 'progress') wire = e.bytesWire ?? wire;
      } catch {
        // not a JSON line
      }
      return false;
    },
    killPoll: () => {
      percent = verifiedPercent(env.journal, env.size);
      return percent >= (sc.killAtPercent ?? 50);
    },
  });
  const resumeArgv = [...env.ep.exec, process.execPath, env.cli, 'resume', env.journal, '--json', '--progress', 'none'];
  const second = await measure(resumeArgv, ctx.server, { timeFile: join(ctx.work, 'time.txt'), timeoutMs: 30 * 60_000 });
  const rec = record(sc, m, round, [...argv, '&&', ...resumeArgv], second, env);
  if (first.signal === null && first.exitCode === 0) {
    rec.ok = false;
    rec.error = `the first run finished before ${sc.killAtPercent} % (nothing killed)`;
  }
  rec.wall = first.wall + second.wall;
  rec.cpuUser += first.cpuUser;
  rec.cpuSys += first.cpuSys;
  rec.cpu = rec.cpuUser + rec.cpuSys;
  rec.remoteCpu += first.remoteCpu;
  rec.rssMiB = Math.max(first.rssMiB, second.rssMiB);
  rec.connsOpened += first.connsOpened;
  rec.connsPeak = Math.max(first.connsPeak, second.connsPeak);
  // `bytesWire` of the last progress event counts finished blocks only; what the killed process
  // had written to its sockets (wchar) includes the blocks in flight that resume sends again.
  rec.parts = { killedAtPercent: percent, killedWall: first.wall, killedWire: wire, killedWritten: first.killedWchar, resumeWall: second.wall, resumeWire: rec.bytesOnWire };
  rec.bytesOnWire = wire + rec.bytesOnWire;
  return rec;
}

const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '–');

export async function runScenario(sc: Scenario, ctx: ScenarioContext): Promise<{ records: RunRecord[]; changedUnits?: number }> {
  const size = sc.image.mib * MiB;
  const source = await ctx.image(sc.image);
  const targetFile = join(ctx.work, `${sc.id}.target`);
  const oldFile = join(ctx.work, `${sc.id}.old`);
  const rsyncTarget = join(ctx.work, `${sc.id}.rsync-target`);
  const remoteDir = join(ctx.work, `${sc.id}.remote-parts`);
  const journal = join(ctx.work, `${sc.id}.journal`);
  await writeFile(targetFile, '');
  await truncate(targetFile, size);
  // A re-sync reads the whole target: its loop device reads the backing file with O_DIRECT, as a
  // disk is read (without direct I/O an O_DIRECT read of the device is served from, and fills,
  // the backing file's page cache: a memory copy where a disk would be read).
  const loop = sc.target === 'file' ? undefined : await attachLoop(targetFile, { directIo: sc.resync !== undefined });
  const target = loop?.dev ?? targetFile;
  const records: RunRecord[] = [];
  let changedUnits: number | undefined;
  try {
    if (sc.resync) changedUnits = await makeOld(source, size, sc.resync, oldFile);
    ctx.log(`${sc.id}: ${sc.title}; target ${target}${changedUnits ? `; ${changedUnits} units changed` : ''}`);
    // Every method reads the source from the page cache: warm it once here, and again before
    // each run where that is cheap (≤ 4 GiB), so no method pays for the disk and another not.
    await sh('dd', [`if=${source}`, 'of=/dev/null', 'bs=4M', 'status=none']);
    for (let round = 0; round < ctx.runs; round++) {
      for (const m of rotate(sc.methods, round)) {
        // Same starting state for every method: the re-sync target holds the old data, the
        // rsync target file is absent (fresh copy) or a copy of the old data (re-sync; made only
        // for a method that writes it: a copy nobody reads would be written back to the disk
        // during the next method's run).
        await rm(rsyncTarget, { force: true });
        await rm(journal, { force: true });
        // A fresh target: all holes again (the loop device's backing file punched through it).
        if (sc.fresh) await sh('fallocate', ['-p', '-o', '0', '-l', String(size), target]);
        if (sc.resync) {
          await sh('dd', [`if=${oldFile}`, `of=${target}`, 'bs=4M', 'conv=fsync', 'status=none']);
          if (m.output === 'file') await sh('cp', ['--sparse=always', oldFile, rsyncTarget]);
        }
        if (size <= 4096 * MiB) await sh('dd', [`if=${source}`, 'of=/dev/null', 'bs=4M', 'status=none']);
        // The preparation's writes reach the disk before the clock starts, not during the run.
        await sh('sync', []);
        const env: RunEnv = { ep: ctx.ep, cli: ctx.cli, source, size, device: target, rsyncTarget, journal, work: ctx.work, remoteDir, tcpPort: ctx.tcpPort };
        const txBefore = ctx.linkTxBytes?.();
        let rec: RunRecord;
        if (m.id === KILL_RESUME_ID) {
          rec = await killAndResume(sc, m, env, ctx, round);
        } else {
          const argv = m.argv(env);
          const probe = ctx.probe?.();
          const r = await measure(argv, ctx.server, { timeFile: join(ctx.work, 'time.txt'), timeoutMs: 60 * 60_000 });
          rec = record(sc, m, round, argv, r, env);
          if (probe) rec.latency = probe(r, env);
        }
        if (txBefore !== undefined) rec.linkBytes = ctx.linkTxBytes!() - txBefore;
        if (m.family === 'ddt') rec.job = await jobHeader(journal);
        if (sc.fresh) rec.allocated = allocatedBytes(targetFile);
        if (round === 0 && ctx.check && rec.ok && m.output !== 'none') {
          // Mostly holes: compare what is data on either side (the backing file holds what the loop device does).
          if (sc.image.fill === 'islands') rec.identical = await sparseIdentical(source, targetFile, size);
          else rec.identical = await identical(source, m.output === 'device' ? target : rsyncTarget, size);
          if (!rec.identical) {
            rec.ok = false;
            rec.error = 'target differs from the source (cmp)';
          }
        }
        records.push(rec);
        ctx.log(
          `  r${round + 1} ${m.id.padEnd(18)} ${fmt(rec.wall, 2).padStart(7)} s ${fmt(size / 1e6 / rec.wall, 0).padStart(5)} MB/s  ` +
            `wire ${fmt(rec.bytesOnWire / 1e6, 1)} MB  conns ${rec.connsOpened}/${rec.connsPeak}  rss ${fmt(rec.rssMiB, 0)} MiB  ` +
            `cpu ${fmt(rec.cpu, 1)}+${fmt(rec.remoteCpu, 1)} s${rec.latency ? `  first data ${fmt(rec.latency.firstDataS ?? NaN, 2)} s, line cpu ${fmt(rec.latency.lineCpuS ?? NaN, 1)} s` : ''}` +
            `${rec.allocated !== undefined ? `  allocated ${fmt(rec.allocated / MiB, 1)} MiB` : ''}${rec.identical ? '  cmp ok' : ''}${rec.ok ? '' : `  FAILED: ${rec.error}`}`,
        );
      }
    }
  } finally {
    await loop?.detach().catch((err: unknown) => ctx.log(`  detach ${loop.dev}: ${String(err)}`));
    for (const f of [targetFile, oldFile, rsyncTarget, journal, remoteDir]) await rm(f, { force: true, recursive: true });
  }
  return { records, changedUnits };
}
