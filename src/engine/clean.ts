/**
 * `ddt clean`: remove what ended runs left on a remote host. For a journal, that job's
 * leftovers (its remote end reached as resume reaches it), refused while the job still runs;
 * for `--host`, every ddt leftover there, in use or not, removed only when asked.
 */
import { DdtError } from '../errors.js';
import type { JournalState } from '../journal/journal.js';
import { describeEnd, newJobId } from '../journal/records.js';
import { processesHolding } from '../local/holders.js';
import { liveLockOf } from '../local/lock.js';
import { RemoteHelper } from '../remote/helper.js';
import { homeDirsOf, removable, removeLeftover, surveyLeftovers, type HousekeepingSession, type Leftover, type Removal } from '../remote/leftovers.js';
import { validateRemotePath } from '../remote/quote.js';
import { SftpHousekeeping } from '../remote/sftp-housekeeping.js';
import type { Endpoint } from '../transport/endpoint.js';
import { endpointOf, type ResumeOverrides } from './job-setup.js';
import { connectPool } from './remote-end.js';
import type { JobUi } from './ui.js';

export interface CleanItem extends Leftover {
  /** Set once removal was tried. */
  removal?: Removal;
}

export interface CleanReport {
  /** The host as the user knows it. */
  host: string;
  /** `clean JOURNAL`: the job. */
  job?: string;
  /** Removal was done (a journal, or `--host --yes`), else only listed. */
  removing: boolean;
  items: CleanItem[];
}

/** A journal's leftovers: removed unless the job still runs. `undefined` for a copy (no remote host). */
export async function cleanJob(o: { journal: string; state: JournalState; overrides: Pick<ResumeOverrides, 'identity' | 'knownHosts' | 'sshConfig'> }, ui: JobUi): Promise<CleanReport | undefined> {
  const h = o.state.header;
  const end = h.command === 'send' ? h.target : h.command === 'pull' ? h.source : undefined;
  if (!end?.remote) return undefined;
  await refuseIfRunningHere(o.journal, h.jobId, h.command === 'pull');
  const remote = end.remote;
  const endpoint = endpointOf(remote, o.overrides);
  const host = describeEnd({ path: '', remote }).slice(0, -1);
  return withSession(endpoint, remote.sudo === true, ui, async (s) => {
    const recorded = h.path.name === 'sftp' || h.path.name === 'rsync' ? h.path.remoteDir : undefined;
    const items: CleanItem[] = await surveyLeftovers(s, { jobId: h.jobId, stagingBases: [...(recorded ? [recorded] : []), s.home] }, ui.signal);
    const held = items.find((i) => i.kind === 'lock' && i.live);
    if (held) {
      throw new DdtError('JOB_RUNNING', `job ${h.jobId} is still running: its lock ${host}:${held.path} is held by a live process; nothing removed (clean it once that run has ended)`);
    }
    // The job does not run: a helper its killed run left still running is ended by the work
    // dir's cleanup (first), so nothing of the job stays in use.
    const order: Record<Leftover['kind'], number> = { workdir: 0, staging: 1, lock: 2 };
    items.sort((a, b) => order[a.kind] - order[b.kind]);
    for (const item of items) {
      item.inUse = false;
      item.removal = await removeLeftover(s, item, ui.signal);
    }
    return { host, job: h.jobId, removing: true, items };
  });
}

/** Every ddt leftover on a host; removed (those not in use) when `remove`. */
export async function cleanHost(o: { endpoint: Endpoint; host: string; sudo: boolean; remoteDir?: string; remove: boolean }, ui: JobUi): Promise<CleanReport> {
  const remoteDir = o.remoteDir === undefined ? undefined : validateRemotePath(o.remoteDir, '--remote-dir');
  return withSession(o.endpoint, o.sudo, ui, async (s) => {
    const items: CleanItem[] = await surveyLeftovers(s, { stagingBases: [s.home, ...(remoteDir ? [remoteDir] : [])] }, ui.signal);
    if (o.remove) {
      // The work dirs first: their cleanup ends any helper that is stale but still running.
      for (const item of items) if (item.kind === 'workdir' && removable(item)) item.removal = await removeLeftover(s, item, ui.signal);
      for (const item of items) if (item.kind !== 'workdir' && removable(item)) item.removal = await removeLeftover(s, item, ui.signal);
    }
    return { host: o.host, removing: o.remove, items };
  });
}

/**
 * Refuse before connecting when the job runs on this host: a process has its journal open (a
 * run keeps it open throughout, also while its connection is down and its remote lock gone), or,
 * for a pull, holds the lock of its local target.
 */
async function refuseIfRunningHere(journal: string, jobId: string, pull: boolean): Promise<void> {
  const running = (why: string) => new DdtError('JOB_RUNNING', `job ${jobId} is still running: ${why}; nothing removed (clean it once that run has ended)`);
  const pid = processesHolding(journal)[0];
  if (pid !== undefined) throw running(`process ${pid} on this host has its journal open`);
  const lock = pull ? await liveLockOf(jobId) : undefined;
  if (lock) throw running(`process ${lock.pid} on this host holds the lock ${lock.dir} of its target`);
}

/**
 * Connect (one connection), install a helper in a work dir of its own (`clean-…`, removed at the
 * end, so it is never a leftover of its own), open an SFTP session; run `f`; close it all.
 */
async function withSession<T>(endpoint: Endpoint, sudo: boolean, ui: JobUi, f: (s: HousekeepingSession) => Promise<T>): Promise<T> {
  // Two channels at once at most (a helper command and the SFTP session).
  const pool = await connectPool(endpoint, { connections: 1, channels: 2, acceptNewHostKey: false, reconnectTimeoutMs: 60_000 }, ui);
  let helper: RemoteHelper | undefined;
  let sftp: SftpHousekeeping | undefined;
  try {
    helper = await RemoteHelper.install(pool, { jobId: `clean-${newJobId()}`, sudo, signal: ui.signal });
    sftp = await SftpHousekeeping.open(pool, ui.signal).catch((err: unknown) => {
      throw new DdtError('PATH_REFUSED', `ddt clean lists and removes staging dirs over SFTP, and the remote host opens no SFTP session (${(err as Error).message}): enable its sftp subsystem`, { cause: err });
    });
    return await f({ helper, sftp, ...homeDirsOf(helper) });
  } finally {
    await sftp?.close().catch(() => undefined);
    await helper?.cleanup().catch(() => undefined);
    await pool.close();
  }
}
