/**
 * One writer per remote target: the helper's `lock` subcommand holds the target's lock for as
 * long as its session's stdin stays open, on a channel of the control connection, for the whole
 * run. When ddt ends or its connection drops, sshd closes the session and the lock goes with it;
 * a holder that was killed leaves a lock the next run takes over (with a warning).
 */
import { formatLastWriter, parseLastWriter, sameLastWriter, type HeldLock, type LastWriter } from '../block/last-writer.js';
import { DdtError } from '../errors.js';
import type { ExecChannel } from '../transport/channels.js';
import type { SshPool } from '../transport/ssh-pool.js';
import type { RemoteHelper } from './helper.js';
import { shCommand } from './quote.js';

export type RemoteLock = HeldLock;

/**
 * The lock's session, opened as soon as the connection is up, beside the helper's install: its
 * shell waits for four lines (the work dir the install made, the target, the job, the run) and
 * then runs the helper's `lock` from that dir, as `lock` on a session of its own would. Over a
 * long link that saves the session's open and exec round trips after the install.
 */
export interface LockSession {
  /** The session, once: undefined where it could not be opened. */
  take(): Promise<ExecChannel | undefined>;
  /** Close it where it was never taken (a refused run). */
  discard(): Promise<void>;
}

// `exec "$@"`: with `sudo -n` as the arguments, the lock is root's, as the helper's other commands.
const WAIT_FOR_LOCK = 'IFS= read -r wd && IFS= read -r t && IFS= read -r job && IFS= read -r run || exit 2\nexec "$@" sh "$wd/ddt-helper.sh" lock "$t" "$wd" "$job" "$run"';

export function openLockSession(pool: SshPool, o: { sudo?: boolean; signal: AbortSignal }): LockSession {
  let taken = false;
  // One that ends before it is told anything is noticed by hold(), which takes a session of its own.
  const opening = pool.exec(shCommand('sh', '-c', WAIT_FOR_LOCK, 'ddt-lock', ...(o.sudo ? ['sudo', '-n'] : [])), { signal: o.signal }).catch(() => undefined);
  const once = (): Promise<ExecChannel | undefined> => {
    if (taken) return Promise.resolve(undefined);
    taken = true;
    return opening;
  };
  return {
    take: once,
    async discard() {
      const ch = await once();
      if (ch) await pool.release(ch).catch(() => undefined);
    },
  };
}

/**
 * Take the lock of `target` for run `run` of the helper's job; BUSY is exit 2 naming the holder.
 *
 * A holder whose connection dropped is replaced once the pool has reconnected (the helper lets
 * the same run take its own lock back). Meanwhile `held()` waits; if the record changed in
 * between (another job took the lock and wrote), the lock counts as lost: this run stops, and
 * the resume re-checks what it proved, since the record no longer names it.
 */
export async function lockRemoteTarget(
  helper: RemoteHelper,
  target: string,
  run: string,
  where: string,
  o: { signal: AbortSignal; warn: (m: string) => void; onChannel?: () => void; session?: LockSession },
): Promise<RemoteLock> {
  const { signal, warn } = o;
  let holder = await hold(helper, target, run, where, signal, o.onChannel, await o.session?.take());
  const first = holder.last;
  let wrote = false;
  let released = false;
  let lost: DdtError | undefined;
  let regaining: Promise<void> | undefined;
  const watch = (h: Holder) =>
    h.closed.then(() => {
      if (released || signal.aborted) return;
      // Taken back as soon as the connection is back (the pool waits for it).
      regaining = hold(helper, target, run, where, signal).then(
        async (again) => {
          const expected: LastWriter | undefined = wrote ? { job: helper.jobId, run, state: 'writing' } : first;
          if (!sameLastWriter(again.last, expected)) {
            await again.release();
            const now = again.last ? formatLastWriter(again.last) : 'none';
            lost = new DdtError('LOCK_LOST', `the lock of ${where} went with a dropped connection, and the target's record changed meanwhile (${now}): another job may have written it; resume re-checks what this run proved`);
            return;
          }
          holder = again;
          regaining = undefined;
          watch(again);
        },
        (err: unknown) => {
          lost = new DdtError('LOCK_LOST', `the lock of ${where} could not be taken back after the connection dropped: ${(err as Error).message}`, { cause: err });
          warn(lost.message);
        },
      );
    });
  watch(holder);
  const current = async (): Promise<Holder> => {
    if (regaining) await regaining;
    if (lost) throw lost;
    return holder;
  };
  return {
    last: first,
    tookOver: holder.tookOver,
    async writing() {
      await (await current()).ask('WRITING', 'OK', signal);
      wrote = true;
    },
    async held() {
      await current();
    },
    async finish(end) {
      const h = await current();
      // A run that never asked to write leaves the record as it found it; the lock goes. Else
      // the requests go together: the holder writes the record, answers, lets the lock go
      // (and, asked to, removes the work dir), all in one round trip. A connection lost
      // meanwhile fails this as it would fail CLEAN alone.
      const answered = wrote ? h.ask('CLEAN', 'OK', signal) : undefined;
      // The work dir's removal is the end's tidying: where it did not happen here, the caller
      // removes the dir as it would have (a `cleanup` session).
      const removed = end?.removeWorkDir ? h.request('END', signal).then((answer) => answer === 'ENDED removed=1', () => false) : Promise.resolve(false);
      released = true;
      h.endInput();
      await answered;
      const gone = await removed;
      await h.release();
      return gone;
    },
    async release() {
      released = true;
      if (regaining) await regaining;
      await holder.release();
    },
  };
}

interface Holder {
  last: LastWriter | undefined;
  tookOver?: string;
  /** Resolves when the holder's channel is gone. */
  closed: Promise<void>;
  /** Send a request; its answer must be `expect`. */
  ask(request: string, expect: string, signal: AbortSignal): Promise<void>;
  /** Send a request; its answer line (undefined: the holder ended without one). */
  request(request: string, signal: AbortSignal): Promise<string | undefined>;
  /** No more requests: the holder answers what it was asked, then lets the lock go and ends. */
  endInput(): void;
  /** End the holder's input and wait until its channel is closed. */
  release(): Promise<void>;
}

/**
 * `onChannel`: the lock's session is open (it has its slot on the connection). `opened`: the
 * lock's session opened ahead (openLockSession), told here what to lock.
 */
async function hold(helper: RemoteHelper, target: string, run: string, where: string, signal: AbortSignal, onChannel?: () => void, opened?: ExecChannel): Promise<Holder> {
  const told = [helper.workDir, target, helper.jobId, run];
  let ch: ExecChannel;
  if (opened && told.every((l) => !/[\n\r]/.test(l))) {
    ch = opened;
    ch.write(told.map((l) => `${l}\n`).join(''));
  } else {
    if (opened) await helper.control.release(opened).catch(() => undefined);
    ch = await helper.control.exec(helper.command('lock', target, helper.workDir, helper.jobId, run), { signal });
  }
  onChannel?.();
  const lines = lineReader(ch);
  const fail = async (err: Error): Promise<never> => {
    await helper.control.release(ch);
    throw err;
  };
  let tookOver: string | undefined;
  for (;;) {
    const line = await lines.next(signal).catch(fail);
    if (line === undefined) {
      // A session opened ahead that ended meanwhile (its close not seen yet): once more on a session of its own.
      if (ch === opened) {
        await helper.control.release(ch).catch(() => undefined);
        return hold(helper, target, run, where, signal, onChannel);
      }
      return fail(new DdtError('REMOTE_COMMAND', `the lock of ${where} could not be taken: the helper ended without an answer`));
    }
    if (line.startsWith('BUSY ')) {
      const w = fields(line);
      return fail(new DdtError('TARGET_LOCKED', `${where} is being written by job ${w.get('job')} (since ${new Date(Number(w.get('since')) * 1000).toISOString()}, helper pid ${w.get('pid')}): wait for it to end, or stop it; a second writer would mix two jobs' blocks`));
    }
    if (line.startsWith('TAKEN ')) tookOver = `${fields(line).get('job')} (pid ${fields(line).get('pid')})`;
    else if (line.startsWith('LOCKED ')) {
      let released = false;
      let ended = false;
      const endInput = () => {
        if (!ended) ch.end();
        ended = true;
      };
      // Requests go at once; their answers come back in the same order.
      let answered: Promise<unknown> = Promise.resolve();
      const holder: Holder = {
        last: parseLastWriter(line.slice('LOCKED last='.length)),
        tookOver,
        closed: lines.ended,
        request(request, sig) {
          ch.write(`${request}\n`);
          const asked = answered.then(() => lines.next(sig));
          answered = asked.catch(() => undefined);
          return asked;
        },
        async ask(request, expect, sig) {
          const answer = await holder.request(request, sig);
          if (answer !== expect) throw new DdtError('REMOTE_COMMAND', `the target's lock (${request}): ${answer ?? 'the lock holder is gone'}`);
        },
        endInput,
        async release() {
          if (released) return;
          released = true;
          endInput();
          await helper.control.release(ch);
        },
      };
      return holder;
    } else return fail(new DdtError(line.startsWith('ERR ') ? 'TARGET_INVALID' : 'REMOTE_PROTOCOL', `the lock of ${where}: ${line.replace(/^ERR /, '')}`));
  }
}

function fields(line: string): Map<string, string> {
  return new Map(line.split(/\s+/).slice(1).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)] as const));
}

/** The lines a channel prints, one at a time; undefined once it ended. */
function lineReader(ch: ExecChannel): { next(signal: AbortSignal): Promise<string | undefined>; ended: Promise<void> } {
  let ended_!: () => void;
  const endedP = new Promise<void>((r) => (ended_ = r));
  let buf = '';
  const ready: string[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  ch.setEncoding('utf8');
  ch.on('data', (d) => {
    buf += String(d);
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      ready.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake?.();
  });
  const end = () => {
    ended = true;
    ended_();
    wake?.();
  };
  ch.on('end', end);
  ch.on('close', end);
  return {
    ended: endedP,
    async next(signal) {
      while (ready.length === 0 && !ended) {
        signal.throwIfAborted();
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve();
          wake = () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          };
          signal.addEventListener('abort', onAbort, { once: true });
        });
        wake = undefined;
      }
      return ready.shift();
    },
  };
}
