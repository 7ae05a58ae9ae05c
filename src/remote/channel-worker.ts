/**
 * What every helper worker shares, whatever it reads from its channel (answer lines for the
 * write worker, framed block data for the read worker): one `ddt-helper.sh serve` process on
 * one channel, its diagnostics kept for messages, one request at a time, one death (channel
 * error, EOF, close, or a broken framing) after which every call fails, and the two ways to
 * end it.
 */
import type { ExecChannel } from '../transport/channels.js';
import { DdtError } from '../errors.js';

const STDERR_KEEP = 4096;
/**
 * A request goes this long without a byte from the helper at most, and longer for a large
 * block: the helper answers a write only after it flushed and read the block back, at the
 * speed of the slowest disk we expect (a dying USB stick, 1 MB/s).
 */
const MIN_SILENCE_MS = 120_000;
const SLOWEST_DISK_BYTES_PER_S = 1_000_000;

/** Gives a worker's channel back (a pool slot, or the end of an OpenSSH session). */
export interface ChannelOwner {
  release(ch: ExecChannel): Promise<void>;
}

export abstract class ChannelWorker {
  private stderr = '';
  private busy = false;
  protected dead?: Error;
  /** The watchdog of the request in progress: fires when the channel stays silent too long. */
  private silence?: { timer: NodeJS.Timeout; ms: number };

  protected constructor(
    private readonly owner: ChannelOwner,
    protected readonly ch: ExecChannel,
    readonly label: string,
  ) {
    ch.stderr.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString('utf8')).slice(-STDERR_KEEP);
    });
    ch.on('data', () => this.heard());
    ch.on('error', (err: Error) => this.kill(err.message));
    ch.on('end', () => this.kill('helper closed its output'));
    ch.on('close', () => this.kill('channel closed'));
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  /** The helper's last diagnostics (stderr), for messages. */
  get stderrTail(): string {
    return this.stderr;
  }

  /** Polite end: `Q` when idle, then give the channel back. */
  async close(): Promise<void> {
    if (this.alive && !this.busy) {
      try {
        this.ch.end('Q\n');
      } catch {
        /* already gone */
      }
    }
    this.kill('closed');
    await this.owner.release(this.ch);
  }

  /** Drop the channel now (abort, broken framing). The remote helper sees EOF and exits. */
  destroy(reason = 'destroyed'): void {
    this.kill(reason);
    void this.owner.release(this.ch);
  }

  /**
   * Start a request: refuses on a dead or busy worker or an aborted signal; an abort meanwhile
   * drops the channel (a half-sent frame cannot be taken back). Returns the request's end.
   */
  protected begin(signal: AbortSignal, silenceMs = MIN_SILENCE_MS): () => void {
    if (this.dead) throw this.deadError();
    if (this.busy) throw new Error(`${this.label}: one request at a time`);
    signal.throwIfAborted();
    this.busy = true;
    const onAbort = () => this.destroy('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    // A helper that cannot answer (a hung tool, a frozen disk) must not hold the run forever.
    this.silence = { ms: silenceMs, timer: setTimeout(() => this.kill(`no answer from the remote helper for ${Math.round(silenceMs / 1000)} s`), silenceMs) };
    return () => {
      signal.removeEventListener('abort', onAbort);
      if (this.silence) clearTimeout(this.silence.timer);
      this.silence = undefined;
      this.busy = false;
    };
  }

  /** Something arrived, or the channel took our bytes: the request is alive. */
  protected heard(): void {
    this.silence?.timer.refresh();
  }

  /** How long a request on `length` bytes may go without a sign of life: it writes, flushes and reads them back. */
  static silenceFor(length: number): number {
    return Math.max(MIN_SILENCE_MS, (length / SLOWEST_DISK_BYTES_PER_S) * 1000);
  }

  /** A failed request's error: the signal's reason when it was aborted. */
  protected failure(err: unknown, signal: AbortSignal): unknown {
    return signal.aborted ? signal.reason : err;
  }

  protected deadError(): DdtError {
    const why = this.dead?.message ?? 'dead';
    const err = this.stderr.trim().split('\n').pop();
    return new DdtError('WORKER_DEAD', `${this.label}: remote helper gone (${why})${err ? `: ${err}` : ''}`, { cause: this.dead });
  }

  /** An answer the protocol does not allow: the framing is lost, so the worker ends. */
  protected protocolError(what: string, line: string): DdtError {
    this.destroy('bad answer');
    return new DdtError('REMOTE_PROTOCOL', `${this.label}: ${what}: ${JSON.stringify(line.slice(0, 200))}`);
  }

  /** The worker is dead from now on; `onDeath` fails whatever was waiting on it. */
  protected kill(reason: string): void {
    if (this.dead) return;
    this.dead = new Error(reason);
    this.onDeath();
  }

  protected abstract onDeath(): void;
}

/**
 * The error an answer line reports, if it is one: `ERR <text>` fails this attempt (the block
 * goes again), except `ERR missing tool …`, which no retry can mend: it stops the run at once.
 */
export function helperError(label: string, line: string): DdtError | undefined {
  if (line.startsWith('ERR missing tool ')) return new DdtError('REMOTE_PERMANENT', `${label}: ${line.slice(4)}`);
  if (line.startsWith('ERR ')) return new DdtError('REMOTE_ERR', `${label}: ${line.slice(4)}`);
  return undefined;
}
