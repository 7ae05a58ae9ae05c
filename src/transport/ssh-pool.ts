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
import { keepaliveFor, retryInWindow, silentSince } from './reconnect.js';
import { closeChannel, endClient, type Channel } from './ssh-close.js';
import { isUnreachableError, loadAuthMethods } from './ssh-connect.js';
import type { Conn, PoolExecOptions, SshPoolOptions } from './ssh-pool-options.js';
import { connectRoute, routeOf, type Route } from './ssh-route.js';
import { trace } from '../trace.js';

export type { SshPoolOptions } from './ssh-pool-options.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const isOpenFailure = (err: unknown) => err instanceof Error && /Channel open failure/i.test(err.message);

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

  private readonly route: Route;
  private readonly keepaliveMs: number;

  private constructor(
    private readonly opts: SshPoolOptions,
    private readonly auth: AnyAuthMethod[],
  ) {
    this.route = routeOf(opts.hops, opts.proxyCommand, opts);
    this.keepaliveMs = keepaliveFor(opts.reconnectTimeoutMs ?? 60_000, opts.serverAliveIntervalMs ?? opts.keepaliveMs);
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
  async exec(cmd: string, opts: PoolExecOptions = {}): Promise<ClientChannel> {
    return (await this.openChannel(
      (client, cb) => {
        const t0 = performance.now();
        client.exec(cmd, (err, ch) => {
          if (!err) this.fastestExecMs = Math.min(this.fastestExecMs, performance.now() - t0);
          if (!err && opts.onExit) ch.once('exit', opts.onExit);
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
    await closeChannel(c);
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
        if (client) await endClient(client);
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
        const begunAt = Date.now();
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
          // Its socket is gone but 'close' has not come yet: lost now, so the next try reconnects.
          if (/not connected/i.test((err as Error).message)) {
            this.onLost(conn, client, 'not connected');
            client.destroy();
            continue;
          }
          if (!isOpenFailure(err)) throw new DdtError('SSH_CHANNEL', `cannot open an SSH channel: ${(err as Error).message}`, { cause: err });
          // A slot we just gave back may not be free on the server yet: wait, don't shrink.
          if (conn.budget.freeingSoon) await this.waitForChange();
          else {
            const verdict = conn.budget.refused(refusals++, begunAt);
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
    const fatal = (err: unknown) => (isDdtError(err) && err.retry === 'never') || (!this.everConnected && isUnreachableError(err));
    const window = { since: conn.lostAt ?? Date.now(), timeoutMs: this.opts.reconnectTimeoutMs ?? 60_000, signal: this.opts.signal, closed: () => this.closed, fatal };
    const ep = { host: conn.host, port: this.opts.port, user: this.opts.user };
    const client = await retryInWindow('the SSH connection pool', window, (left) => {
      // ConnectTimeout bounds each set-up; what is left of the window bounds it too.
      const settings = { ...this.opts, keepaliveMs: this.keepaliveMs, readyTimeoutMs: Math.min(this.opts.readyTimeoutMs ?? 30_000, left) };
      return connectRoute(ep, this.auth, this.route, { settings, signal: this.opts.signal }, (lost, reason) => this.onLost(conn, lost, reason));
    });
    if (this.closed) {
      client.end();
      throw new DdtError('CLOSED', 'the SSH connection pool is closed');
    }
    conn.client = client;
    conn.lostAt = undefined;
    this.everConnected = true;
  }

  /** A connection dropped: its channels are gone (ssh2 ends them); reconnect lazily on demand. */
  private onLost(conn: Conn, client: Client, reason: string): void {
    trace(`connection ${conn.index + 1} lost: ${reason}${conn.client !== client ? ' (already replaced)' : ''}`);
    if (conn.client !== client) return;
    conn.client = undefined;
    // The window starts when data stopped moving, not when the keepalive noticed.
    conn.lostAt = silentSince(reason, this.keepaliveMs);
    // ssh2 ends the connection's channels itself: their slots are free for the next one now.
    for (const ch of [...conn.channels]) this.forget(ch);
    conn.budget.reset();
    if (!this.closed) this.opts.onWarning?.(`SSH connection ${conn.index + 1} to ${conn.host} lost (${reason}); will reconnect`);
    this.wake();
  }
}
