/**
 * The helper workers of one remote device (a target being written, a source being read): at
 * most one per channel the transport gives, each doing one block at a time. A caller takes an
 * idle worker or waits for one; a worker whose channel died is dropped and replaced on the next
 * call (with none alive, the replacement waits for a reconnect); when the server refuses a
 * channel (OpenSSH MaxSessions) the pool goes on with the workers it has.
 */
import { WaitLine } from '../abort.js';
import { SshError } from '../errors.js';

export interface PoolWorker {
  readonly alive: boolean;
  /** Polite end (the helper quits); the channel is given back. */
  close(): Promise<void>;
  /** Drop the channel now. */
  destroy(reason?: string): void;
}

export interface WorkerPoolOptions<W> {
  /** Open one worker; `wait`: wait for a free channel instead of failing with SSH_NO_CHANNEL. */
  spawn(signal: AbortSignal | undefined, wait: boolean): Promise<W>;
  /** Channels the transport can give right now (shrinks when the server refuses some). */
  capacity(): number;
  /** The error for a call after `close()`. */
  closedError(): Error;
}

export class WorkerPool<W extends PoolWorker> {
  private readonly idle: W[] = [];
  private readonly all = new Set<W>();
  private readonly waiters = new WaitLine<W | undefined>();
  private opening = 0;
  private closed = false;
  private draining = false;
  private maxWorkers = 1;

  private constructor(private readonly o: WorkerPoolOptions<W>) {}

  /**
   * Start up to `want` workers in parallel: the opens reveal the server's real channel limit
   * before any block moves. At least one must come up.
   */
  static async start<W extends PoolWorker>(want: number, o: WorkerPoolOptions<W>, signal?: AbortSignal): Promise<WorkerPool<W>> {
    const pool = new WorkerPool(o);
    pool.maxWorkers = Math.max(1, Math.min(want, o.capacity()));
    const started = await Promise.allSettled(Array.from({ length: pool.maxWorkers }, () => pool.spawn(signal)));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (pool.all.size === 0) throw failed?.reason ?? new SshError('SSH_NO_CHANNEL', 'no worker channel could be opened');
    pool.maxWorkers = Math.min(pool.all.size, o.capacity());
    return pool;
  }

  /** Workers alive. */
  get size(): number {
    return this.all.size;
  }

  /** An idle worker, a new one where a lost one left room, or the next one given back. */
  async acquire(signal: AbortSignal): Promise<W> {
    for (;;) {
      if (this.closed || this.draining) throw this.o.closedError();
      signal.throwIfAborted();
      const w = this.idle.pop();
      if (w) {
        if (w.alive) return w;
        this.all.delete(w);
        continue;
      }
      if (this.all.size + this.opening < Math.min(this.maxWorkers, this.o.capacity())) {
        // Replace a lost worker. With other workers alive, don't wait for a channel (if the
        // server shrank the limit meanwhile, wait for a busy worker instead); with none, wait.
        try {
          await this.spawn(signal, this.all.size === 0);
        } catch (err) {
          if (!(err instanceof SshError) || err.code !== 'SSH_NO_CHANNEL') throw err;
          this.maxWorkers = Math.max(1, this.all.size);
          if (this.all.size === 0) throw err;
        }
        continue;
      }
      const got = await this.waiters.wait(signal);
      if (got) return got;
    }
  }

  /** A worker is done with its block: to the next caller waiting, else idle. A dead one makes room. */
  giveBack(w: W): void {
    if (this.closed) return;
    if (!w.alive) {
      this.all.delete(w);
      this.waiters.wakeOne(undefined); // someone waiting may open a replacement now
      return;
    }
    if (!this.waiters.wakeOne(w)) this.idle.push(w);
  }

  /** Take no more calls (they fail, also the ones waiting); workers still come back as idle. */
  drain(): void {
    this.draining = true;
    this.waiters.wakeAll(undefined);
  }

  /** Quit idle workers politely, drop busy ones (their blocks stay unproven). Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.waiters.wakeAll(undefined);
    const workers = [...this.all];
    const idle = new Set(this.idle.splice(0));
    this.all.clear();
    await Promise.all(workers.map((w) => (idle.has(w) ? w.close() : Promise.resolve(w.destroy('closed')))));
  }

  /** Drop every channel now; remote helpers see EOF and exit. */
  abort(): void {
    this.closed = true;
    this.waiters.wakeAll(undefined);
    for (const w of this.all) w.destroy('aborted');
    this.all.clear();
    this.idle.length = 0;
  }

  /** Drop every worker's channel, keeping the pool open (the run is being aborted by its signal). */
  destroyAll(reason: string): void {
    for (const w of this.all) w.destroy(reason);
  }

  // ---------------------------------------------------------------------------------------

  private async spawn(signal?: AbortSignal, wait = false): Promise<void> {
    this.opening++;
    try {
      const w = await this.o.spawn(signal, wait);
      if (this.closed) {
        await w.close();
        return;
      }
      this.all.add(w);
      this.giveBack(w);
    } finally {
      this.opening--;
    }
  }
}
