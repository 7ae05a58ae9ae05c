/**
 * One writer per remote target: the helper's `lock` subcommand holds the target's lock for as
 * long as its session's stdin stays open, on a channel of the control connection, for the whole
 * run. When ddt ends or its connection drops, sshd closes the session and the lock goes with it;
 * a holder that was killed leaves a lock the next run takes over (with a warning).
 */
import { parseLastWriter, type LastWriter } from '../block/last-writer.js';
import { DdtError } from '../errors.js';
import type { ExecChannel } from '../transport/channels.js';
import type { RemoteHelper } from './helper.js';

export interface HeldLock {
  readonly last: LastWriter | undefined;
  readonly tookOver?: string;
  /** This run finished its bookkeeping: the record says so. */
  clean(): Promise<void>;
  release(): Promise<void>;
}

/**
 * Take the lock of `target` for run `run` of the helper's job; BUSY is exit 2 naming the holder.
 * A holder whose connection dropped is replaced once the pool has reconnected (the helper lets
 * the same run take its own lock back); the record is marked clean through whichever holds it.
 */
export async function lockRemoteTarget(helper: RemoteHelper, target: string, run: string, where: string, signal: AbortSignal, warn: (m: string) => void): Promise<HeldLock> {
  let holder = await hold(helper, target, run, where, signal);
  let released = false;
  let lost: Promise<Holder | Error> | undefined;
  const watch = (h: Holder) =>
    h.closed.then(() => {
      if (released || signal.aborted) return;
      // Taken back as soon as the connection is back (the pool waits for it).
      lost = hold(helper, target, run, where, signal).then(
        (again) => {
          holder = again;
          lost = undefined;
          watch(again);
          return again;
        },
        (err: unknown) => {
          warn(`the lock of ${where} could not be taken back after the connection dropped: ${(err as Error).message}`);
          return err as Error;
        },
      );
    });
  watch(holder);
  return {
    last: holder.last,
    tookOver: holder.tookOver,
    async clean() {
      const h = lost ? await lost : holder;
      if (h instanceof Error) throw h;
      await h.clean();
    },
    async release() {
      released = true;
      const h = lost ? await lost : holder;
      if (!(h instanceof Error)) await h.release();
    },
  };
}

interface Holder {
  last: LastWriter | undefined;
  tookOver?: string;
  /** Resolves when the holder's channel is gone. */
  closed: Promise<void>;
  clean(): Promise<void>;
  release(): Promise<void>;
}

async function hold(helper: RemoteHelper, target: string, run: string, where: string, signal: AbortSignal): Promise<Holder> {
  const ch = await helper.control.exec(helper.command('lock', target, helper.workDir, helper.jobId, run), { signal });
  const lines = lineReader(ch);
  const fail = async (err: Error): Promise<never> => {
    await helper.control.release(ch);
    throw err;
  };
  let tookOver: string | undefined;
  for (;;) {
    const line = await lines.next(signal).catch(fail);
    if (line === undefined) return fail(new DdtError('REMOTE_COMMAND', `the lock of ${where} could not be taken: the helper ended without an answer`));
    if (line.startsWith('BUSY ')) {
      const w = fields(line);
      return fail(new DdtError('TARGET_LOCKED', `${where} is being written by job ${w.get('job')} (since ${new Date(Number(w.get('since')) * 1000).toISOString()}, helper pid ${w.get('pid')}): wait for it to end, or stop it; a second writer would mix two jobs' blocks`));
    }
    if (line.startsWith('TAKEN ')) tookOver = `${fields(line).get('job')} (pid ${fields(line).get('pid')})`;
    else if (line.startsWith('LOCKED ')) {
      return {
        last: parseLastWriter(line.slice('LOCKED last='.length)),
        tookOver,
        closed: lines.ended,
        async clean() {
          ch.write('CLEAN\n');
          const answer = await lines.next(signal);
          if (answer !== 'OK') throw new DdtError('REMOTE_COMMAND', `the target's record could not be written: ${answer ?? 'the lock holder is gone'}`);
        },
        async release() {
          ch.end();
          await helper.control.release(ch);
        },
      };
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
          wake = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        wake = undefined;
      }
      return ready.shift();
    },
  };
}
