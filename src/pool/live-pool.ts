/**
 * A pool of things that can die: helper workers on SSH channels or OpenSSH sessions, SFTP
 * sessions. Each member does one thing at a time; a caller takes an idle one or waits. A member
 * that died (its connection dropped, its framing broke) is dropped and replaced on the next
 * call; with none alive the replacement waits for a slot (a reconnect). How many may live at
 * once is the transport's capacity, which shrinks when the server refuses sessions.
 */
import { WaitLine } from '../abort.js';
import { isDdtError } from '../errors.js';

export interface Mortal {
  readonly alive: boolean;
  /** Polite end (the remote side quits); its channel is given back. */
  close(): Promise<void>;
  /** Drop its channel now. */
  destroy(reason?: string): void;
}

export interface LivePoolOptions<T> {
  /** Open one member; `wait`: wait for a free channel instead of failing with SSH_NO_CHANNEL. */
  spawn(signal: AbortSignal | undefined, wait: boolean): Promise<T>;
  /** Members the transport can carry right now. */
  capacity(): number;
  /** The error for a call after `close()`. */
  closedError(): Error;
}

export class LivePool<T extends Mortal> {
  private readonly idle: T[] = [];
  private readonly all = new Set<T>();
  private readonly waiters = new WaitLine<T | undefined>();
  private opening = 0;
  private closed = false;
  private draining = false;
  private maxSize = 1;
  private inFlight = 0;
  private readonly drained = new WaitLine<void>();

  private constructor(private readonly o: LivePoolOptions<T>) {}

  /**
   * Start up to `want` members in parallel: the opens reveal the server's real session limit
   * before any block moves. At least one must come up.
   */
  static async start<T extends Mortal>(want: number, o: LivePoolOptions<T>, signal?: AbortSignal): Promise<LivePool<T>> {
    const pool = new LivePool(o);
    pool.maxSize = Math.max(1, Math.min(want, o.capacity()));
    const started = await Promise.allSettled(Array.from({ length: pool.maxSize }, () => pool.spawn(signal)));
    if (pool.all.size === 0) throw (started.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as Error) ?? o.closedError();
    pool.maxSize = Math.min(pool.all.size, o.capacity());
    return pool;
  }

  /**
   * Open up to `n` more members in parallel, as many as the server allows: after another pool
   * took its share of a server that allows fewer sessions than asked, so both kinds get some.
   */
  async grow(n: number, signal?: AbortSignal): Promise<void> {
    const before = this.all.size;
    this.maxSize += n;
    await Promise.allSettled(Array.from({ length: n }, () => this.spawn(signal)));
    this.maxSize = before + Math.max(0, this.all.size - before);
  }

  /** Members alive. */
  get size(): number {
    return this.all.size;
  }

  /** Any member alive (for one-off requests such as a free-space measurement). */
  any(): T | undefined {
    for (const m of this.all) if (m.alive) return m;
    return undefined;
  }

  /** Run `fn` with a member; while it runs, `close()` waits for it. */
  async use<R>(signal: AbortSignal, fn: (m: T) => Promise<R>): Promise<R> {
    const m = await this.take(signal);
    try {
      return await fn(m);
    } finally {
      this.put(m);
    }
  }

  /** A member for the caller alone until it is `put` back; `close()` waits for it meanwhile. */
  async take(signal: AbortSignal): Promise<T> {
    const m = await this.acquire(signal);
    this.inFlight++;
    return m;
  }

  put(m: T): void {
    this.inFlight--;
    this.offer(m);
    if (this.inFlight === 0) this.drained.wakeAll();
  }

  /** An idle member, a new one where a lost one left room, or the next one given back. */
  private async acquire(signal: AbortSignal): Promise<T> {
    for (;;) {
      if (this.closed || this.draining) throw this.o.closedError();
      signal.throwIfAborted();
      const m = this.idle.pop();
      if (m) {
        if (m.alive) return m;
        this.all.delete(m);
        continue;
      }
      if (this.all.size + this.opening < Math.min(this.maxSize, this.o.capacity())) {
        // Replace a lost member. With others alive, don't wait for a channel (if the server
        // shrank its limit meanwhile, wait for a busy member instead); with none, wait.
        try {
          await this.spawn(signal, this.all.size === 0);
        } catch (err) {
          if (!isDdtError(err, 'SSH_NO_CHANNEL')) throw err;
          this.maxSize = Math.max(1, this.all.size);
          if (this.all.size === 0) throw err;
        }
        continue;
      }
      const got = await this.waiters.wait(signal);
      if (got) return got;
    }
  }

  /** A member is free: to the next caller waiting, else idle. A dead one makes room. */
  private offer(m: T): void {
    if (this.closed) return;
    if (!m.alive) {
      this.all.delete(m);
      this.waiters.wakeOne(undefined); // someone waiting may open a replacement now
      return;
    }
    if (!this.waiters.wakeOne(m)) this.idle.push(m);
  }

  /** Take no more calls (they fail, also the ones waiting), let the ones running finish, quit politely. Idempotent. */
  async close(): Promise<void> {
    this.draining = true;
    this.waiters.wakeAll(undefined);
    while (this.inFlight > 0) await this.drained.wait(new AbortController().signal);
    this.closed = true;
    const members = [...this.all];
    const idle = new Set(this.idle.splice(0));
    this.all.clear();
    await Promise.all(members.map((m) => (idle.has(m) ? m.close() : Promise.resolve(m.destroy('closed')))));
  }

  /** Drop every member now; the remote sides see EOF and exit. */
  abort(): void {
    this.closed = true;
    this.waiters.wakeAll(undefined);
    for (const m of this.all) m.destroy('aborted');
    this.all.clear();
    this.idle.length = 0;
    this.drained.wakeAll();
  }

  /** Drop every member's channel, keeping the pool open (the run is being aborted by its signal). */
  destroyAll(reason: string): void {
    for (const m of this.all) m.destroy(reason);
  }

  // ---------------------------------------------------------------------------------------

  private async spawn(signal?: AbortSignal, wait = false): Promise<void> {
    this.opening++;
    try {
      const m = await this.o.spawn(signal, wait);
      if (this.closed) {
        await m.close();
        return;
      }
      this.all.add(m);
      this.offer(m);
    } finally {
      this.opening--;
    }
  }
}
