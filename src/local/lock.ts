/**
 * One writer per local target (the target of a copy or a pull), the same scheme the remote
 * helper uses on its host: a lock directory, which mkdir creates atomically, named by what the
 * target is (its device number, or its file's device and inode) rather than the path that led
 * there, holding the owner's PID, start time, job and run; and next to it the target's
 * last-writer record. A lock whose owner is gone is taken over (the caller warns).
 */
import { promises as fs, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { formatLastWriter, parseLastWriter, type HeldLock, type LastWriter } from '../block/last-writer.js';
import { DdtError } from '../errors.js';
import { splitDevno } from './device.js';

/** Where locks and records live: persistent for root (they outlive reboots), else the user's own. */
export function lockBase(): string {
  return process.env.DDT_LOCK_DIR ?? (process.getuid?.() === 0 ? '/var/lib/ddt/locks' : join(homedir(), '.ddt', 'locks'));
}

/** `b-MAJ_MIN` or `f-DEV_INO`: the same key the helper computes for the same object. */
export async function lockKey(path: string): Promise<string> {
  const st = await fs.stat(path, { bigint: true });
  if (st.isBlockDevice()) {
    const { major, minor } = splitDevno(st.rdev);
    return `b-${major}_${minor}`;
  }
  return `f-${st.dev}_${st.ino}`;
}

/** Start time of a process (field 22 of /proc/PID/stat): with the PID it names one process. */
function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

interface Owner {
  pid: number;
  start: string;
  job: string;
  run: string;
  since: string;
}

function parseOwner(text: string): Owner | undefined {
  const kv = new Map(text.trim().split(/\s+/).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)] as const));
  const pid = Number(kv.get('pid'));
  if (!Number.isSafeInteger(pid) || pid <= 0 || !kv.get('start') || !kv.get('job')) return undefined;
  return { pid, start: kv.get('start')!, job: kv.get('job')!, run: kv.get('run') ?? '', since: kv.get('since') ?? '' };
}

export async function lockLocalTarget(path: string, jobId: string, run: string): Promise<HeldLock> {
  const base = lockBase();
  await fs.mkdir(base, { recursive: true, mode: 0o700 });
  const key = await lockKey(path);
  const dir = join(base, `${key}.lock`);
  const lastPath = join(base, `${key}.last`);
  const me = `pid=${process.pid} start=${procStart(process.pid)} job=${jobId} run=${run} since=${Math.floor(Date.now() / 1000)}\n`;
  let tookOver: string | undefined;
  for (let tries = 0; ; tries++) {
    try {
      await fs.mkdir(dir, { mode: 0o700 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries > 30) throw new DdtError('TARGET_LOCKED', `cannot take the lock ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const owner = parseOwner(await fs.readFile(join(dir, 'owner'), 'utf8').catch(() => ''));
    if (owner && procStart(owner.pid) === owner.start) {
      throw new DdtError('TARGET_LOCKED', `target ${path} is being written by job ${owner.job} (pid ${owner.pid} on this host, since ${new Date(Number(owner.since) * 1000).toISOString()}): wait for it to end, or stop it`);
    }
    const age = Date.now() - (await fs.stat(dir).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
    if (!owner && age < 5000) {
      await new Promise((r) => setTimeout(r, 500)); // a holder between its mkdir and its owner file
      continue;
    }
    // The owner is gone: move its dir aside (rename is atomic, one taker wins) and try again.
    const aside = `${dir}.stale.${process.pid}.${tries}`;
    if (await fs.rename(dir, aside).then(() => true, () => false)) {
      await fs.rm(aside, { recursive: true, force: true });
      tookOver = owner ? `${owner.job} (pid ${owner.pid})` : 'an unknown job';
    }
  }
  await fs.writeFile(join(dir, 'owner'), me, { mode: 0o600 });
  const last = parseLastWriter(await fs.readFile(lastPath, 'utf8').catch(() => ''));
  const record = async (state: LastWriter['state']) => {
    const tmp = `${lastPath}.tmp.${process.pid}`;
    const fh = await fs.open(tmp, 'w', 0o600);
    await fh.writeFile(formatLastWriter({ job: jobId, run, state }) + '\n');
    await fh.datasync();
    await fh.close();
    await fs.rename(tmp, lastPath);
  };
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    const owner = parseOwner(await fs.readFile(join(dir, 'owner'), 'utf8').catch(() => ''));
    if (owner?.pid === process.pid) await fs.rm(dir, { recursive: true, force: true });
  };
  return {
    last,
    tookOver,
    writing: () => record('writing'),
    // Held by this process until it releases it or ends: nothing here can take it away.
    held: async () => undefined,
    async finish() {
      await record('clean');
      await release();
      return false; // no remote work dir here
    },
    release,
  };
}

/** A lock dir here held by a live process of job `jobId` (the local target of a pull or copy being written). */
export async function liveLockOf(jobId: string): Promise<{ dir: string; pid: number } | undefined> {
  const base = lockBase();
  const names = await fs.readdir(base).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith('.lock'))) {
    const dir = join(base, name);
    const owner = parseOwner(await fs.readFile(join(dir, 'owner'), 'utf8').catch(() => ''));
    if (owner?.job === jobId && procStart(owner.pid) === owner.start) return { dir, pid: owner.pid };
  }
  return undefined;
}
