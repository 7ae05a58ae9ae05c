/**
 * A fixed set of SSH connections, each carrying several channels. It never has more than
 * `connections` TCP connections (setup and probes included), learns the server's real channel
 * limit from refused opens (each connection's SessionBudget) instead of failing, and brings a
 * dropped connection back with capped exponential backoff when channels are next needed.
 */
import type { AnyAuthMethod, Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { WaitLine } from '../abort.js';
import { DdtError, isDdtError } from '../errors.js';
import { SessionBudget } from '../pool/session-budget.js';
import type { ChannelSource, ExecChannel, ExecOptions } from './channels.js';
import { connectSsh, isUnreachableError, loadAuthMethods, type SshAuthSettings } from './ssh-connect.js';

export interface SshPoolOptions extends SshAuthSettings {
  /** Addresses of the same machine; connection i goes to hosts[i % hosts.length]. */
  hosts: string[];
  port: number;
  user: string;
  connections: number;
  channelsPerConnection: number;
  /** How long a lost connection may stay unreachable before its channels are given up. */
  reconnectTimeoutMs?: number;
  /** Ends connection attempts (setup included) at once. */
  signal?: AbortSignal;
}

type Channel = ClientChannel | SFTPWrapper;

interface Conn {
  index: number;
  host: string;
  client?: Client;
  budget: SessionBudget;
  /** Given up (unreachable past the reconnect timeout while others carry on). */
  dead: boolean;
  channels: Set<Channel>;
  connecting?: Promise<void>;
  lostAt?: number;
}

const BACKOFF_START_MS = 250;
const BACKOFF_MAX_MS = 8_000;
const CLOSE_WAIT_MS = 5_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isExecChannel(ch: Channel): ch is ClientChannel {
  // ssh2's SFTP wrapper has close() too (of a file handle) and a stub stderr without resume().
  return typeof (ch as ClientChannel).close === 'function' && typeof (ch as ClientChannel).stderr?.resume === 'function';
}

function isOpenFailure(err: unknown): boolean {
  return err instanceof Error && /Channel open failure/i.test(err.message);
}

export class SshPool implements ChannelSource {
  private readonly conns: Conn[];
  private readonly owner = new Map<Channel, Conn>();
  /** Callers waiting for a slot, a connection or a shrink. */
  private readonly changes = new WaitLine<void>();
  private closed = false;
  private everConnected = false;
  /** The fastest exec channel open so far (ms): two round trips, open and exec request. */
  private fastestExecMs = Infinity;
  private warned = false;

  private constructor(
    private readonly opts: SshPoolOptions,
    private readonly auth: AnyAuthMethod[],
  ) {
    const n = Math.max(1, Math.floor(opts.connections));
    this.conns = Array.from({ length: n }, (_, index) => ({
      index,
      host: opts.hosts[index % opts.hosts.length]!,
      budget: new SessionBudget(opts.channelsPerConnection, (capacity) => this.shrunk(index, capacity)),
      dead: false,
      channels: new Set<Channel>(),
    }));
  }

  /**
   * Connect every connection. The first one alone (fails fast on a wrong host, a refused key,
   * and records a new host key once), then the rest in parallel: sshd's per-connection start-up
   * cost is paid during setup, not in the middle of the transfer.
   */
  static async open(opts: SshPoolOptions): Promise<SshPool> {
    if (opts.hosts.length === 0) throw new DdtError('SSH_CONNECT', 'no host to connect to');
    const pool = new SshPool(opts, loadAuthMethods(opts.user, opts));
    try {
      await pool.connect(pool.conns[0]!);
      await Promise.all(pool.conns.slice(1).map((c) => pool.connect(c)));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Channels the pool can have open at once, as far as it knows now. */
  capacity(): number {
    return this.conns.reduce((n, c) => n + (c.dead ? 0 : c.budget.capacity), 0);
  }

  /** Index (0-based) of the connection carrying an open channel, for per-connection progress. */
  connectionOf(ch: ExecChannel | Channel): number | undefined {
    return this.owner.get(ch as Channel)?.index;
  }

  /** Live TCP connections (for tests and progress). */
  liveConnections(): number {
    return this.conns.filter((c) => c.client).length;
  }

  /**
   * Run `cmd` on a new channel of the least-loaded connection. Read its stdout: ssh2 emits
   * 'close' (which frees the slot) only after the output has been consumed.
   */
  async exec(cmd: string, opts: ExecOptions = {}): Promise<ClientChannel> {
    return (await this.openChannel(
      (client, cb) => {
        const t0 = performance.now();
        client.exec(cmd, (err, ch) => {
          if (!err) this.fastestExecMs = Math.min(this.fastestExecMs, performance.now() - t0);
          cb(err, ch);
        });
      },
      opts,
    )) as ClientChannel;
  }

  /**
   * The link's round trip as the channel opens so far tell (half the fastest exec open: the
   * open and the exec request each wait for an answer), in ms; undefined before any. An upper
   * bound, close enough to tell a LAN from a long link before a session exists to measure it.
   */
  rttEstimateMs(): number | undefined {
    return Number.isFinite(this.fastestExecMs) ? this.fastestExecMs / 2 : undefined;
  }

  /** An SFTP session; counts as one channel like an exec. Keep it for the run. */
  async sftp(opts: ExecOptions = {}): Promise<SFTPWrapper> {
    return (await this.openChannel((client, cb) => client.sftp(cb), opts)) as SFTPWrapper;
  }

  /** Close a channel and wait until the server has acknowledged it (its slot is free then). */
  async release(ch: ExecChannel | Channel): Promise<void> {
    const c = ch as Channel;
    const conn = this.owner.get(c);
    if (!conn) return;
    conn.budget.closing_();
    const closed = new Promise<void>((resolve) => {
      c.once('close', () => resolve());
      setTimeout(resolve, CLOSE_WAIT_MS).unref();
    });
    try {
      if (isExecChannel(c)) {
        // ssh2 emits 'close' only after the read side ended: drain what nobody reads any more.
        c.stderr.resume();
        c.resume();
        c.close();
      } else c.end();
    } catch {
      /* already closing */
    }
    await closed;
    conn.budget.closed();
    this.forget(c);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await Promise.all(
      this.conns.map(async (c) => {
        const client = c.client;
        c.client = undefined;
        if (!client) return;
        await new Promise<void>((resolve) => {
          client.once('close', () => resolve());
          setTimeout(() => {
            client.destroy();
            resolve();
          }, CLOSE_WAIT_MS).unref();
          client.end();
        });
      }),
    );
  }

  // ---------------------------------------------------------------------------------------

  private async openChannel(open: (client: Client, cb: (err: Error | undefined, ch: Channel) => void) => void, opts: ExecOptions): Promise<Channel> {
    let refusals = 0;
    for (;;) {
      if (this.closed) throw new DdtError('CLOSED', 'the SSH connection pool is closed');
      opts.signal?.throwIfAborted();
      const conn = this.pickLive();
      if (conn) {
        const client = conn.client!;
        conn.budget.take();
        try {
          const ch = await new Promise<Channel>((resolve, reject) => {
            try {
              open(client, (err, ch) => (err ? reject(err) : resolve(ch)));
            } catch (err) {
              reject(err); // ssh2 throws "Not connected" synchronously
            }
          });
          conn.budget.opened();
          this.track(conn, ch);
          return ch;
        } catch (err) {
          conn.budget.failed();
          if (conn.client !== client) continue; // the connection dropped meanwhile
          if (!isOpenFailure(err)) throw new DdtError('SSH_CHANNEL', `cannot open an SSH channel: ${(err as Error).message}`, { cause: err });
          // A slot we just gave back may not be free on the server yet: wait, don't shrink.
          if (conn.budget.freeingSoon) await this.waitForChange();
          else {
            const verdict = conn.budget.refused(refusals++);
            if ('retryInMs' in verdict) await sleep(verdict.retryInMs);
          }
          continue;
        }
      }
      const revivable = this.conns.find((c) => !c.client && !c.dead);
      if (revivable) {
        await this.revive(revivable);
        continue;
      }
      if (this.capacity() === 0) throw new DdtError('SSH_NO_CHANNEL', 'no SSH connection is left');
      // A slot being given back is free in a moment; only slots held by users count as busy.
      if (opts.wait === false && !this.conns.some((c) => c.client && c.budget.freeingSoon)) {
        throw new DdtError('SSH_NO_CHANNEL', 'every SSH channel is busy');
      }
      await this.waitForChange(opts.signal);
    }
  }

  /** Warn once, with the final number: later shrinks follow from the same server limit. */
  private shrunk(index: number, capacity: number): void {
    // The same server limits every connection: the others learn it too.
    for (const c of this.conns) if (c.index !== index && c.budget.inUse === 0) c.budget.shrink(capacity);
    this.wake();
    if (this.warned) return;
    this.warned = true;
    this.opts.onWarning?.(`the server refused an SSH channel (OpenSSH MaxSessions?): using ${capacity} channel(s) per connection instead of ${this.opts.channelsPerConnection}`);
  }

  private pickLive(): Conn | undefined {
    let best: Conn | undefined;
    for (const c of this.conns) {
      if (!c.client || c.dead || !c.budget.hasRoom) continue;
      if (!best || c.budget.inUse < best.budget.inUse) best = c;
    }
    return best;
  }

  private track(conn: Conn, ch: Channel): void {
    conn.channels.add(ch);
    this.owner.set(ch, conn);
    ch.once('close', () => this.forget(ch));
  }

  private forget(ch: Channel): void {
    const conn = this.owner.get(ch);
    if (!conn) return;
    this.owner.delete(ch);
    conn.channels.delete(ch);
    conn.budget.give();
    this.wake();
  }

  private wake(): void {
    this.changes.wakeAll();
  }

  private waitForChange(signal = new AbortController().signal): Promise<void> {
    return this.changes.wait(signal);
  }

  private connect(conn: Conn): Promise<void> {
    conn.connecting ??= this.connectWithBackoff(conn).finally(() => {
      conn.connecting = undefined;
      this.wake();
    });
    return conn.connecting;
  }

  /** Reconnect on demand; if it cannot come back but others are alive, carry on without it. */
  private async revive(conn: Conn): Promise<void> {
    try {
      await this.connect(conn);
    } catch (err) {
      if (this.closed || isDdtError(err) && err.retry === 'never' || !this.conns.some((c) => c.client)) throw err;
      conn.dead = true;
      this.opts.onWarning?.(`giving up connection ${conn.index + 1} to ${conn.host}: ${(err as Error).message}`);
    }
  }

  private async connectWithBackoff(conn: Conn): Promise<void> {
    const started = conn.lostAt ?? Date.now();
    const timeout = this.opts.reconnectTimeoutMs ?? 60_000;
    for (let delay = BACKOFF_START_MS; ; delay = Math.min(delay * 2, BACKOFF_MAX_MS)) {
      if (this.closed) throw new DdtError('CLOSED', 'the SSH connection pool is closed');
      this.opts.signal?.throwIfAborted();
      // What is left of the reconnect timeout bounds this attempt too: a link that comes back
      // inside the window is used, and the run never waits past it.
      const left = Math.max(1_000, timeout - (Date.now() - started));
      try {
        const ep = { host: conn.host, port: this.opts.port, user: this.opts.user };
        const client = await connectSsh(ep, { ...this.opts, readyTimeoutMs: Math.min(this.opts.readyTimeoutMs ?? 30_000, left) }, this.auth, (lost, reason) => this.onLost(conn, lost, reason));
        if (this.closed) {
          client.end();
          throw new DdtError('CLOSED', 'the SSH connection pool is closed');
        }
        conn.client = client;
        conn.lostAt = undefined;
        this.everConnected = true;
        return;
      } catch (err) {
        if ((isDdtError(err) && err.retry === 'never') || (!this.everConnected && isUnreachableError(err)) || this.closed) throw err;
        this.opts.signal?.throwIfAborted();
        const elapsed = Date.now() - started;
        if (elapsed >= timeout) {
          throw new DdtError('SSH_CONNECT', `${(err as Error).message} (gave up after ${(elapsed / 1000).toFixed(1)} s)`, { cause: err });
        }
        await sleep(Math.min(delay, timeout - elapsed)); // the last try lands on the deadline
      }
    }
  }

  /** A connection dropped: its channels are gone (ssh2 ends them); reconnect lazily on demand. */
  private onLost(conn: Conn, client: Client, reason: string): void {
    if (conn.client !== client) return;
    conn.client = undefined;
    conn.lostAt = Date.now();
    // ssh2 ends every channel of the connection itself (users see 'end', then 'close'); the
    // slots are free for the reconnected connection right away.
    for (const ch of [...conn.channels]) this.forget(ch);
    conn.budget.reset();
    if (!this.closed) this.opts.onWarning?.(`SSH connection ${conn.index + 1} to ${conn.host} lost (${reason}); will reconnect`);
    this.wake();
  }
}
