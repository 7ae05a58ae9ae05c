/**
 * A run's hold on its target: the lock (through the helper on a remote host, or here), and the
 * sessions that keep a slot of the connection the block workers share while they run.
 */
import { existsSync } from 'node:fs';
import type { HeldLock } from '../block/last-writer.js';
import type { JournalState } from '../journal/journal.js';
import { lockLocalTarget } from '../local/lock.js';
import type { RemoteSession } from '../paths/types.js';
import { lockRemoteTarget, type LockSession } from '../remote/target-lock.js';
import type { JobSetup } from './job-setup.js';
import { warn, type JobUi } from './ui.js';

/** The id of the last run a journal knows of. */
export function lastRunOf(state: JournalState): string | undefined {
  return state.runs.filter((r) => r.event === 'start').at(-1)?.run;
}

/**
 * Start what opens a session on the connection the workers share and keeps it a while
 * (`start` is told when it is open): `channel` resolves once it has its slot, or has ended.
 */
export function holdingSlot<T>(start: (onOpen: () => void) => Promise<T>): { done: Promise<T>; channel: Promise<unknown> } {
  let onOpen!: () => void;
  const opened = new Promise<void>((resolve) => (onOpen = resolve));
  const done = start(onOpen);
  return { done, channel: Promise.race([opened, done.catch(() => undefined)]) };
}

/** Does the target exist already (the remote one, as probed)? Then it is locked early. */
export function targetExists(s: JobSetup, remote: RemoteSession | undefined): boolean {
  return s.target.endpoint ? remote?.probe.exists === true : existsSync(s.target.path);
}

/** Hold the target's lock for the run: through the helper on its host, or here. */
export async function lockTarget(s: JobSetup, remote: RemoteSession | undefined, run: string, ui: JobUi, onChannel?: () => void, session?: LockSession): Promise<HeldLock> {
  const path = s.target.path;
  const where = remote && `${remote.endpoint.hosts[0]}:${path}`;
  const lock = remote ? await lockRemoteTarget(remote.helper, path, run, where!, { signal: ui.signal, warn: (m) => warn(ui, m), onChannel, session }) : await lockLocalTarget(path, s.jobId, run);
  if (lock.tookOver) warn(ui, `took over the lock of ${path} from job ${lock.tookOver}, which is gone`);
  return lock;
}

/**
 * Whether `hint` has already resolved true: false while it is still pending (it is not waited
 * for). A settled promise's value reaches the race before the resolved `false` listed after it.
 */
export async function trueByNow(hint: Promise<boolean>): Promise<boolean> {
  // (Not `hint.catch(…)` in the race: that is a new promise, settled a turn later, after `false`.)
  return Promise.race([hint, Promise.resolve(false)]).catch(() => false);
}

/**
 * The record naming this run, asked for before the first write: `atOnce` (a round trip while
 * the ends open), or at the first write, for a run that may well write nothing (a re-sync
 * whose target holds the source already leaves the record as it was, as a refused run does).
 * `done` fails where the request failed, and waits for one in flight.
 */
export function namingRecord(lock: HeldLock, atOnce: boolean): { beforeWrite(): Promise<void>; done(): Promise<void> } {
  let asked: Promise<void> | undefined;
  const beforeWrite = () => {
    if (!asked) {
      asked = lock.writing();
      asked.catch(() => undefined); // awaited by the writes and by done()
    }
    return asked;
  };
  if (atOnce) void beforeWrite();
  return { beforeWrite, done: async () => asked };
}
