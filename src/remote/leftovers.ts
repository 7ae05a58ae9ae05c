/**
 * What ended runs left on a remote host, and its removal (`ddt clean`): staging dirs of
 * `--via sftp` / `--engine rsync --remote-dir` (listed, counted and emptied over SFTP), helper
 * work dirs (listed by the helper, which knows whether a helper of theirs still runs, and removed
 * by its `cleanup`, which ends those helpers first), and lock dirs whose owner is gone (the
 * helper's `leftovers` and `remove-lock`: under `--sudo` they are root's). The targets' KEY.last
 * records are never touched: a later run of a job trusts what it proved only while its record
 * is still there.
 */
import { posix } from 'node:path';
import { DdtError, messageOf } from '../errors.js';
import type { RemoteHelper } from './helper.js';
import { validateRemotePath } from './quote.js';
import { SftpHousekeeping, STAGING_PREFIX } from './sftp-housekeeping.js';

export type LeftoverKind = 'staging' | 'workdir' | 'lock';

export interface Leftover {
  kind: LeftoverKind;
  /** Absolute, on the remote host. */
  path: string;
  /** The job it belongs to (by its name, or a lock's owner line); `unknown` for a lock without one. */
  job: string;
  /** It is itself in use: the lock is held, a helper of the work dir runs. */
  live: boolean;
  /** It or its job is in use (a helper of the job runs, or a lock of the job is held): never removed. */
  inUse: boolean;
  /** Staging: ddt's block files; work dir: its files. Absent where they could not be counted. */
  files?: number;
  bytes?: number;
  /** Staging: entries that are not ddt's block files; they, and so the dir, stay. */
  others?: number;
}

/** What removing a leftover did. */
export interface Removal {
  /** Something was removed (a staging dir may lose its block files and keep other entries). */
  removed: boolean;
  /** Work dir: helper processes ended first. */
  killed?: number;
  /** Staging: the dir itself went too. */
  dirRemoved?: boolean;
  files?: number;
  bytes?: number;
  error?: string;
}

/** A connection to the host: a helper installed in a work dir of its own, and an SFTP session. */
export interface HousekeepingSession {
  helper: RemoteHelper;
  sftp: SftpHousekeeping;
  /** `$HOME/.ddt` of the login user, where work dirs are (resolved). */
  workBase: string;
  /** The login user's `$HOME` (resolved), the default staging dir's parent. */
  home: string;
}

/** The session's dirs, from where the helper was installed: `$HOME/.ddt/<its own id>`. */
export function homeDirsOf(helper: RemoteHelper): { workBase: string; home: string } {
  const workBase = posix.dirname(helper.workDir);
  return { workBase, home: posix.dirname(workBase) };
}

interface HelperView {
  lockBase: string;
  workDirs: Array<{ name: string; live: boolean }>;
  locks: Array<{ name: string; job: string; live: boolean }>;
}

async function helperView(s: HousekeepingSession, jobId: string | undefined, signal?: AbortSignal): Promise<HelperView> {
  const out = await s.helper.run(['leftovers', s.workBase, ...(jobId === undefined ? [] : [jobId])], signal);
  const view: HelperView = { lockBase: '', workDirs: [], locks: [] };
  for (const line of out.split('\n')) {
    const w = line.split(' ');
    if (w[0] === 'lockbase' && w.length >= 2) view.lockBase = w.slice(1).join(' ');
    else if (w[0] === 'workdir' && w.length === 3) view.workDirs.push({ name: w[2]!, live: w[1] === 'live' });
    else if (w[0] === 'lock' && w.length === 4) view.locks.push({ name: w[3]!, job: w[2]!, live: w[1] === 'live' });
    else if (line.trim()) throw new DdtError('REMOTE_PROTOCOL', `ddt-helper leftovers: unexpected line ${JSON.stringify(line.slice(0, 80))}`);
  }
  return view;
}

/**
 * The leftovers on the host (of job `jobId` only, when given): staging dirs in each of
 * `stagingBases`, work dirs in `$HOME/.ddt` (but the session's own), lock dirs. Whatever belongs
 * to a job with a running helper or a held lock is in use.
 */
export async function surveyLeftovers(s: HousekeepingSession, o: { jobId?: string; stagingBases: string[] }, signal?: AbortSignal): Promise<Leftover[]> {
  const view = await helperView(s, o.jobId, signal);
  const workDirs = view.workDirs.filter((w) => w.name !== s.helper.jobId);
  const busy = new Set([...workDirs.filter((w) => w.live).map((w) => w.name), ...view.locks.filter((l) => l.live).map((l) => l.job)]);
  const items: Leftover[] = [];
  for (const base of [...new Set(o.stagingBases.map((b) => validateRemotePath(b.replace(/(.)\/+$/, '$1'), 'staging dir')))]) {
    const names = o.jobId === undefined ? await s.sftp.subdirs(base, STAGING_PREFIX) : [`${STAGING_PREFIX}${o.jobId}`];
    for (const name of names) {
      const path = posix.join(base, name);
      const count = await s.sftp.countStaging(path);
      if (!count) continue; // not there, or not a directory
      const job = name.slice(STAGING_PREFIX.length);
      items.push({ kind: 'staging', path, job, live: false, inUse: busy.has(job), ...count });
    }
  }
  for (const w of workDirs) {
    const path = posix.join(s.workBase, w.name);
    // A work dir of a job run under --sudo may hold files its login user cannot list.
    const count = await s.sftp.count(path).catch(() => undefined);
    items.push({ kind: 'workdir', path, job: w.name, live: w.live, inUse: busy.has(w.name), ...count });
  }
  for (const l of view.locks) items.push({ kind: 'lock', path: posix.join(view.lockBase, l.name), job: l.job, live: l.live, inUse: l.live || busy.has(l.job) });
  return items;
}

/** Is there anything of ddt's to remove (a staging dir holding only other people's files is not)? */
export function removable(item: Leftover): boolean {
  return !item.inUse && !(item.kind === 'staging' && item.files === 0 && (item.others ?? 0) > 0);
}

/** Remove one leftover; a failure is reported in the result, the others still go. */
export async function removeLeftover(s: HousekeepingSession, item: Leftover, signal?: AbortSignal): Promise<Removal> {
  try {
    if (item.kind === 'staging') {
      const r = await s.sftp.removeStaging(item.path, signal);
      return r ? { removed: r.files > 0 || r.dirRemoved, dirRemoved: r.dirRemoved, files: r.files, bytes: r.bytes } : { removed: false };
    }
    if (item.kind === 'workdir') {
      const r = await s.helper.cleanup(signal, item.path);
      return { removed: r.removed, killed: r.killed };
    }
    const out = await s.helper.run(['remove-lock', posix.basename(item.path)], signal);
    return { removed: /removed=1/.test(out) };
  } catch (err) {
    signal?.throwIfAborted();
    return { removed: false, error: messageOf(err) };
  }
}
