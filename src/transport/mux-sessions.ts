/**
 * Sessions of the local OpenSSH client, spread over one or more ControlMaster connections, as a
 * ChannelSource: a helper worker's block bytes go from ddt through a pipe into the master, which
 * encrypts them in C. Each master has a SessionBudget: a session the server refuses (MaxSessions
 * counts the master's own session too) teaches that master's limit.
 */
import { WaitLine } from '../abort.js';
import { DdtError } from '../errors.js';
import { SessionBudget } from '../pool/session-budget.js';
import type { ChannelSource, ExecChannel, ExecOptions } from './channels.js';
import type { MuxChannel } from './mux-channel.js';
import { sessionRefusal, type OpenSshMux } from './openssh-mux.js';

/** Sessions opened on a master before giving up on one (the master may be reconnecting). */
const OPEN_ATTEMPTS = 4;
const STDERR_KEEP = 4096;

interface Master {
  mux: OpenSshMux;
  budget: SessionBudget;
}

export class MuxSessions implements ChannelSource {
  private readonly masters: Master[];
  private readonly carrier = new Map<ExecChannel, Master>();
  private warned = false;
  private readonly changes = new WaitLine<void>();

  constructor(
    muxes: OpenSshMux[],
    sessionsPerMaster: number,
    /** Index of the first master among the run's connections (the ssh2 pool's come first). */
    private readonly firstConnection: number,
    private readonly onWarning?: (message: string) => void,
  ) {
    this.masters = muxes.map((mux) => ({ mux, budget: new SessionBudget(sessionsPerMaster, (n) => this.shrunk(n)) }));
  }

  get muxes(): OpenSshMux[] {
    return this.masters.map((m) => m.mux);
  }

  capacity(): number {
    return this.masters.reduce((n, m) => n + m.budget.capacity, 0);
  }

  connectionOf(ch: ExecChannel): number | undefined {
    const m = this.carrier.get(ch);
    return m ? this.firstConnection + this.masters.indexOf(m) : undefined;
  }

  /** A session on the least-loaded master; `o.ready` proves it runs (see ExecOptions). */
  async exec(cmd: string, o: ExecOptions = {}): Promise<ExecChannel> {
    const m = await this.slot(o);
    let refusals = 0;
    for (let attempt = 1; ; attempt++) {
      let ch: MuxChannel | undefined;
      let stderr = '';
      let begunAt = Date.now();
      try {
        await m.mux.ensure(o.signal);
        begunAt = Date.now();
        ch = m.mux.openSession(cmd);
        ch.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-STDERR_KEEP)));
        await o.ready?.(ch);
        this.track(m, ch);
        return ch;
      } catch (err) {
        m.budget.failed();
        this.wake();
        if (!ch || o.signal?.aborted) throw err;
        ch.destroy();
        // The client's diagnostics are complete once it has exited.
        await Promise.race([ch.closed, new Promise((r) => setTimeout(r, 2000))]);
        const why = sessionRefusal(stderr);
        if (why) {
          // Judged by when the session was asked for: the client's exit was waited for above.
          const verdict = m.budget.refused(refusals++, begunAt);
          if (!('retryInMs' in verdict)) throw new DdtError('SSH_NO_CHANNEL', `the server refused an OpenSSH session (MaxSessions?): ${why}`, { cause: err });
          await new Promise((r) => setTimeout(r, verdict.retryInMs));
        } else if (attempt >= OPEN_ATTEMPTS || (await m.mux.check())) {
          // Not a refusal, and the master is fine: the session itself failed.
          throw err;
        }
        // Else the master was gone with its connection: check() ended it, and ensure() brings
        // it back (with backoff, up to the reconnect timeout) on the next attempt.
        m.budget.take();
      }
    }
  }

  /**
   * A session slot for a program that opens its own session over a master (rsync's `-e ssh`):
   * run `fn` while holding it. `fn` reports the server's refusal by returning `'refused'`; then
   * the slot is tried again (the budget decides: a slot being freed, or a smaller limit).
   */
  async withSlot<T>(signal: AbortSignal, fn: (mux: OpenSshMux) => Promise<T | 'refused'>): Promise<T> {
    for (let refusals = 0; ; ) {
      const m = await this.slot({ signal });
      let result: T | 'refused' = 'refused';
      let begunAt = Date.now();
      try {
        await m.mux.ensure(signal);
        begunAt = Date.now();
        result = await fn(m.mux);
      } finally {
        // The program's session is over when it returns (or never opened when refused).
        if (result === 'refused') m.budget.failed();
        else {
          m.budget.opened();
          m.budget.give();
        }
        this.wake();
      }
      if (result !== 'refused') return result;
      const verdict = m.budget.refused(refusals++, begunAt);
      await new Promise((r) => setTimeout(r, 'retryInMs' in verdict ? verdict.retryInMs : 100));
    }
  }

  async release(ch: ExecChannel): Promise<void> {
    await (ch as MuxChannel).close();
    this.forget(ch);
  }

  /** Stop every master (idempotent). */
  async stop(): Promise<void> {
    await Promise.all(this.masters.map((m) => m.mux.stop().catch(() => undefined)));
  }

  // ---------------------------------------------------------------------------------------

  /** A master with room (the least loaded), waiting for one unless `o.wait === false`. */
  private async slot(o: ExecOptions): Promise<Master> {
    for (;;) {
      o.signal?.throwIfAborted();
      const free = this.masters.filter((m) => m.budget.hasRoom);
      if (free.length) {
        const m = free.reduce((a, b) => (b.budget.inUse < a.budget.inUse ? b : a));
        m.budget.take();
        return m;
      }
      if (o.wait === false) throw new DdtError('SSH_NO_CHANNEL', 'every OpenSSH session is busy');
      await this.changes.wait(o.signal ?? new AbortController().signal);
    }
  }

  /** A session counts while its client process lives: one that died frees its place at once. */
  private track(m: Master, ch: MuxChannel): void {
    m.budget.opened();
    this.carrier.set(ch, m);
    ch.once('close', () => this.forget(ch));
  }

  private forget(ch: ExecChannel): void {
    const m = this.carrier.get(ch);
    if (!m) return;
    this.carrier.delete(ch);
    m.budget.give();
    this.wake();
  }

  private wake(): void {
    this.changes.wakeAll();
  }

  private shrunk(capacity: number): void {
    this.wake();
    if (this.warned) return;
    this.warned = true;
    this.onWarning?.(`the server refused an OpenSSH session (MaxSessions?): using ${capacity} session(s) on that connection`);
  }
}
