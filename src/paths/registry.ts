/**
 * Which data path carries a run: one predicate for new runs and resumes alike, with every
 * reason a path was passed over, so `--dry-run` and warnings can say why.
 */
import { DdtError } from '../errors.js';
import type { PathName } from '../journal/records.js';
import { localPath } from './local.js';
import { opensshPath } from './openssh.js';
import { rsyncPath } from './rsync.js';
import { sftpPath } from './sftp.js';
import { streamPath } from './stream.js';
import type { DataPath, PathQuery } from './types.js';

export const PATHS: Record<PathName, DataPath> = { local: localPath, stream: streamPath, openssh: opensshPath, sftp: sftpPath, rsync: rsyncPath };

/**
 * Tried in this order when nothing was asked for, fastest first (benchmarks/RESULTS.md):
 * OpenSSH sessions, else SFTP staging, else exec channels, which always work.
 */
const DEFAULT_ORDER: readonly PathName[] = ['openssh', 'sftp', 'stream'];
/**
 * A re-sync's changed blocks go as their changed units, to the helper's workers, on every path.
 * Staging has at most as many workers as the remote host has cores (and half the channels),
 * holds the other channels for SFTP sessions that a re-sync's few whole blocks seldom use, and
 * sets up its staging dir before the first block; exec channels give every channel to a worker.
 * With one connection, 1 % of 2 GiB changed, both took the same on loopback and staging 26 %
 * longer over 40 ms round trips, so exec channels come before staging.
 */
const DELTA_ORDER: readonly PathName[] = ['openssh', 'stream', 'sftp'];

export interface PathChoice {
  path: DataPath;
  /** Asked for by the user: a path that cannot work is an error, never a fallback. */
  explicit: boolean;
  /** Paths passed over, each with its reasons. */
  skipped: Array<{ name: PathName; reasons: string[] }>;
  /** What the user should hear about the choice (a fallback they may not expect). */
  warnings: string[];
}

/** The option that asks for a path, for messages. */
export function optionFor(name: PathName): string {
  return name === 'rsync' ? '--engine rsync' : `--via ${name}`;
}

/**
 * The path for a run: the one asked for (`--via`, `--engine rsync`, or `--remote-dir` asking for
 * staging; exit 2 listing the reasons when it cannot work), else for a resume the recorded one,
 * else the first of the default order (a re-sync's, when it sends deltas) that can; `stream`
 * always can.
 */
export function choosePath(q: PathQuery, o: { asked?: PathName; recorded?: PathName } = {}): PathChoice {
  if (q.command === 'copy') return { path: localPath, explicit: false, skipped: [], warnings: [] };
  if (o.asked) {
    const reasons = PATHS[o.asked].refusals(q);
    if (reasons.length) throw new DdtError('PATH_REFUSED', `${optionFor(o.asked)} cannot carry this run: ${reasons.join('; ')}`);
    return { path: PATHS[o.asked], explicit: true, skipped: [], warnings: [] };
  }
  // A resume keeps its path where it can, else streams: no new staging decisions mid-job.
  const order = o.recorded ? [o.recorded, 'stream' as const] : q.delta ? DELTA_ORDER : DEFAULT_ORDER;
  const skipped: PathChoice['skipped'] = [];
  for (const name of order) {
    const reasons = PATHS[name].refusals(q);
    if (reasons.length === 0) return { path: PATHS[name], explicit: false, skipped, warnings: fallbackWarnings(q, name, skipped, o.recorded !== undefined) };
    skipped.push({ name, reasons });
  }
  return { path: streamPath, explicit: false, skipped, warnings: [] };
}

/**
 * A resume that cannot continue on its path says so. A new send says so when it streams
 * because staging cannot work there; OpenSSH passed over (one connection, no local ssh) is
 * an optimisation not taken, not news.
 */
function fallbackWarnings(q: PathQuery, chosen: PathName, skipped: PathChoice['skipped'], resume: boolean): string[] {
  if (resume) return skipped.map((s) => `resuming ${optionFor(chosen)}: ${optionFor(s.name)} cannot carry it now (${s.reasons.join('; ')})`);
  const sftp = skipped.find((s) => s.name === 'sftp');
  if (chosen !== 'stream' || !sftp || q.command !== 'send' || q.compress === 'gzip') return [];
  return [`sending with --via stream, staging is not possible: ${sftp.reasons.join('; ')}`];
}
