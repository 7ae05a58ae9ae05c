/**
 * Each target remembers which job wrote it last and whether that job's run finished its
 * bookkeeping (`job=J run=R state=writing|clean`, kept next to the target's lock). A resume
 * trusts the blocks its journal proved only when that record names its own last run: if
 * another job (or a run of this one the journal does not know) wrote the target since, the
 * proofs are re-checked first.
 */
export interface LastWriter {
  job: string;
  run: string;
  state: 'writing' | 'clean';
}

/** The record as the lock prints it (`none`, `garbled` or `job=… run=… state=…`). */
export function parseLastWriter(text: string): LastWriter | undefined {
  const kv = new Map(text.trim().split(/\s+/).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)] as const));
  const job = kv.get('job');
  const run = kv.get('run');
  const state = kv.get('state');
  if (!job || !run || (state !== 'writing' && state !== 'clean')) return undefined;
  return { job, run, state };
}

export function formatLastWriter(w: LastWriter): string {
  return `job=${w.job} run=${w.run} state=${w.state}`;
}

/**
 * Why a resume must re-check the blocks proven earlier, or undefined when it may trust them:
 * the target's record names this job's last run (which may have been killed mid-write: its
 * proofs still hold, the blocks it was writing were never proven).
 */
export function distrust(last: LastWriter | undefined, jobId: string, lastRun: string | undefined): string | undefined {
  if (!last) return 'the target has no record of who wrote it last';
  if (last.job !== jobId) return `the target's record names job ${last.job} as its last writer`;
  if (lastRun === undefined || last.run !== lastRun) return `a run of this job that its journal does not know (${last.run}) wrote the target since`;
  return undefined;
}

/** Does the record say what `expected` says (both missing counts as the same)? */
export function sameLastWriter(a: LastWriter | undefined, b: LastWriter | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.job === b.job && a.run === b.run && a.state === b.state;
}

/**
 * A target's lock, held for one run (here or through the helper on the target's host). Taking
 * it leaves the record alone: a run that ends before writing (refused, not confirmed, a dry
 * run) changes nothing. The run says `writing()` before its first write, `clean()` once every
 * block is proven.
 */
export interface HeldLock {
  /** Who wrote the target last, before this run (undefined: no record). */
  readonly last: LastWriter | undefined;
  /** The job whose dead holder's lock this run took over, if it did. */
  readonly tookOver?: string;
  /** The record names this run, `writing`, durably: call before the first write. */
  writing(): Promise<void>;
  /**
   * Resolves while the lock is this run's; waits while it is being taken back after its
   * connection dropped; rejects (LOCK_LOST) when it could not be, or another writer had it meanwhile.
   */
  held(signal?: AbortSignal): Promise<void>;
  /**
   * This run finished its bookkeeping: the record says so, and the lock goes (one round trip for
   * both). `removeWorkDir`: a remote holder removes the run's work dir after the lock, in the
   * same round trip; true when it did (a local lock has none: false).
   */
  finish(end?: { removeWorkDir?: boolean }): Promise<boolean>;
  release(): Promise<void>;
}
