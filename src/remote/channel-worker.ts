/**
 * What every helper worker shares, whatever it reads from its channel (answer lines for the
 * write worker, framed block data for the read worker): one `ddt-helper.sh serve` process on
 * one channel, its diagnostics kept for messages, one death (channel error, EOF, close, or a
 * broken framing) after which every call fails, and the two ways to end it.
 */
import { RemoteHelperError } from './remote-error.js';

const STDERR_KEEP = 4096;

/** The events and calls of a channel that a worker needs (ssh2 exec channel, OpenSSH session). */
export interface HelperChannel {
  on(event: 'error', fn: (err: Error) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  readonly stderr: { on(event: 'data', fn: (b: Buffer) => void): unknown };
  end(last: string): unknown;
}

/** Gives a worker's channel back (an ssh2 pool slot, or the end of a mux session). */
export interface ChannelOwner<C> {
  release(ch: C): Promise<void>;
}

export abstract class ChannelWorker<C extends HelperChannel> {
  private stderr = '';
  protected busy = false;
  protected dead?: Error;

  protected constructor(
    private readonly owner: ChannelOwner<C>,
    protected readonly ch: C,
    readonly label: string,
  ) {
    ch.stderr.on('data', (b: Buffer) => {
      this.stderr = (this.stderr + b.toString('utf8')).slice(-STDERR_KEEP);
    });
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

  protected deadError(): RemoteHelperError {
    const why = this.dead?.message ?? 'dead';
    const err = this.stderr.trim().split('\n').pop();
    return new RemoteHelperError('WORKER_DEAD', `${this.label}: remote helper gone (${why})${err ? `: ${err}` : ''}`, { cause: this.dead });
  }

  /** The worker is dead from now on; `onDeath` fails whatever was waiting on it. */
  protected kill(reason: string): void {
    if (this.dead) return;
    this.dead = new Error(reason);
    this.onDeath();
  }

  protected abstract onDeath(): void;
}
