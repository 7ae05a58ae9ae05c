/**
 * A fixed set of SSH connections, each carrying several channels (DESIGN §2, §4). It never has
 * more than `connections` TCP connections (setup and probes included), learns the server's real
 * channel limit from refused opens (OpenSSH MaxSessions) instead of failing, and brings a dropped
 * connection back with capped exponential backoff when channels are next needed.
 */
import type { AnyAuthMethod, Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { SshError } from '../errors.js';
import { connectSsh, isFatalSshError, isUnreachableError, loadAuthMethods, type SshAuthSettings } from './ssh-connect.js';

export interface SshPoolOptions extends SshAuthSettings {
  /** Addresses of the same machine; connection i goes to hosts[i % hosts.length]. */
  hosts: string[];
  port: number;
  user: string;
  connections: number;
  channelsPerConnection: number;
  /** How long a lost connection may stay unreachable before its channels are given up. */
  reconnectTimeoutMs?: number;
}

export interface ExecOptions {
  signal?: AbortSignal;
  /** false: fail with SSH_NO_CHANNEL instead of waiting when every slot is busy. */
  wait?: boolean;
}

type Channel = ClientChannel | SFTPWrapper;

interface Conn {
  index: number;
  host: string;
  client?: Client;
  capacity: number;
  /** Open channels, including released ones whose close is not yet acknowledged. */
  channels: Set<Channel>;
  releasing: Set<Channel>;
  opening: number;
  /** When a channel of this connection last closed (Date.now()). */
  freedAt: number;
  connecting?: Promise<void>;
  lostAt?: number;
}

const BACKOFF_START_MS = 250;
const BACKOFF_MAX_MS = 8_000;
const CLOSE_WAIT_MS = 5_000;
/**
 * sshd frees a session's slot a moment after the channel's close: an open that closely follows
 * the close of a finished command is now and then refused (4 callers on 2 slots hit it within
 * ~6 commands). A refusal within this long of a close is tried again (25, 50, 100, 200 ms later)
 * before the pool takes it as the server's limit.
 */
const RECENT_CLOSE_MS = 1_000;
const RACE_RETRIES = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isExecChannel(ch: Channel): ch is ClientChannel {
  // ssh2's SFTP wrapper has close() too (of a file handle) and a stub stderr without resume().
  return typeof (ch as ClientChannel).close === 'function' && typeof (ch as ClientChannel).stderr?.resume === 'function';
}

function isOpenFailure(err: unknown): boolean {
  return err instanceof Error && /Channel open failure/i.test(err.message);
}

export class SshPool {
  private readonly conns: Conn[];
  private readonly owner = new Map<Channel, Conn>();
  private waiters: Array<() => void> = [];
  private closed = false;
  private everConnected = false;
  private warnedCapacity = false;
  private pendingWarning = false;

  private constructor(
    private readonly opts: SshPoolOptions,
    private readonly auth: AnyAuthMethod[],
  ) {
    const n = Math.max(1, Math.floor(opts.connections));
    this.conns = Array.from({ length: n }, (_, index) => ({
      index,
      host: opts.hosts[index % opts.hosts.length],
      capacity: Math.max(1, Math.floor(opts.channelsPerConnection)),
      channels: new Set<Channel>(),
      releasing: new Set<Channel>(),
      opening: 0,
      freedAt: 0,
    }));
  }

  /**
   * Connect every connection. The first one alone (fails fast on a wrong host, a refused key,
   * and records a new host key once), then the rest in parallel: sshd's per-connection start-up
   * cost (FACTS: up to 2 s) is paid during setup, not in the middle of the transfer.
   */
  static async open(opts: SshPoolOptions): Promise<SshPool> {
    if (opts.hosts.length === 0) throw new SshError('SSH_CONNECT', 'no host to connect to');
    const pool = new SshPool(opts, loadAuthMethods(opts.user, opts));
    try {
      await pool.connect(pool.conns[0]);
      await Promise.all(pool.conns.slice(1).map((c) => pool.connect(c)));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Channels the pool can have open at once, as far as it knows now. */
  capacity(): number {
    return this.conns.reduce((n, c) => n + c.capacity, 0);
  }

  /** Index (0-based) of the connection carrying an open channel, for per-connection progress. */
  connectionOf(ch: Channel): number | undefined {
    return this.owner.get(ch)?.index;
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
    return (await this.openChannel((client, cb) => client.exec(cmd, cb), opts)) as ClientChannel;
  }

  /** An SFTP session; counts as one channel like an exec. Keep it for the run (FACTS). */
  async sftp(opts: ExecOptions = {}): Promise<SFTPWrapper> {
    return (await this.openChannel((client, cb) => client.sftp(cb), opts)) as SFTPWrapper;
  }

  /** Close a channel and wait until the server has acknowledged it (its slot is free then). */
  async release(ch: Channel): Promise<void> {
    const conn = this.owner.get(ch);
    if (!conn) return;
    conn.releasing.add(ch);
    const closed = new Promise<void>((resolve) => {
      ch.once('close', () => resolve());
      setTimeout(resolve, CLOSE_WAIT_MS).unref();
    });
    try {
      if (isExecChannel(ch)) {
        // ssh2 emits 'close' only after the read side ended: drain what nobody reads any more.
        ch.stderr.resume();
        ch.resume();
        ch.close();
      } else ch.end();
    } catch {
      /* already closing */
    }
    await closed;
    this.forget(ch);
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
    const attempt = { raced: 0 };
    for (;;) {
      if (this.closed) throw new SshError('SSH_CLOSED', 'the SSH connection pool is closed');
      opts.signal?.throwIfAborted();
      const conn = this.pickLive();
      if (conn) {
        const result = await this.tryOpen(conn, open, attempt);
        if (result.ch) return result.ch;
        if (result.retry) continue;
        throw result.error;
      }
      const revivable = this.conns.find((c) => !c.client && c.capacity > 0);
      if (revivable) {
        await this.revive(revivable);
        continue;
      }
      if (this.capacity() === 0) throw new SshError('SSH_NO_CHANNEL', 'the server accepts no channels (MaxSessions?)');
      // A slot being given back is free in a moment; only slots held by users count as busy.
      if (opts.wait === false && !this.conns.some((c) => c.client && c.releasing.size > 0)) {
        throw new SshError('SSH_NO_CHANNEL', 'every SSH channel is busy');
      }
      await this.waitForChange(opts.signal);
    }
  }

  private async tryOpen(
    conn: Conn,
    open: (client: Client, cb: (err: Error | undefined, ch: Channel) => void) => void,
    attempt: { raced: number },
  ): Promise<{ ch?: Channel; retry?: boolean; error?: unknown }> {
    const client = conn.client!;
    conn.opening++;
    try {
      const ch = await new Promise<Channel>((resolve, reject) => {
        try {
          open(client, (err, ch) => (err ? reject(err) : resolve(ch)));
        } catch (err) {
          reject(err); // ssh2 throws "Not connected" synchronously
        }
      });
      this.track(conn, ch);
      return { ch };
    } catch (err) {
      if (conn.client !== client) return { retry: true }; // connection dropped meanwhile
      if (!isOpenFailure(err)) return { error: new SshError('SSH_CHANNEL', `cannot open an SSH channel: ${(err as Error).message}`, { cause: err }) };
      if (conn.releasing.size > 0) {
        // A slot we just gave back may not be free on the server yet: wait, don't shrink.
        await this.waitForChange();
        return { retry: true };
      }
      if (Date.now() - conn.freedAt < RECENT_CLOSE_MS && attempt.raced < RACE_RETRIES) {
        await sleep(25 * 2 ** attempt.raced++); // probably raced a slot sshd is still freeing
        return { retry: true };
      }
      this.shrink(conn, conn.channels.size + conn.opening - 1);
      return { retry: true };
    } finally {
      conn.opening--;
      if (this.pendingWarning && conn.opening === 0) {
        this.pendingWarning = false;
        this.warnedCapacity = true;
        this.opts.onWarning?.(
          `the server refused an SSH channel (OpenSSH MaxSessions?): using ${conn.capacity} channel(s) per connection instead of ${this.opts.channelsPerConnection}`,
        );
      }
    }
  }

  /** The server refused a channel: this connection holds only what it has (open or opening). */
  private shrink(conn: Conn, capacity: number): void {
    const before = conn.capacity;
    conn.capacity = Math.max(0, Math.min(conn.capacity, capacity));
    // Warn once, after concurrent opens on this connection settled, with the final number.
    if (conn.capacity < before && !this.warnedCapacity) this.pendingWarning = true;
    if (conn.capacity < before) for (const c of this.conns) if (c !== conn && c.capacity > conn.capacity && !c.channels.size) c.capacity = conn.capacity;
    this.wake();
  }

  private pickLive(): Conn | undefined {
    let best: Conn | undefined;
    for (const c of this.conns) {
      if (!c.client) continue;
      const load = c.channels.size + c.opening;
      if (load >= c.capacity) continue;
      if (!best || load < best.channels.size + best.opening) best = c;
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
    conn.freedAt = Date.now();
    conn.channels.delete(ch);
    conn.releasing.delete(ch);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private waitForChange(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
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
      if (this.closed || isFatalSshError(err) || !this.conns.some((c) => c.client)) throw err;
      conn.capacity = 0;
      this.opts.onWarning?.(`giving up connection ${conn.index + 1} to ${conn.host}: ${(err as Error).message}`);
    }
  }

  private async connectWithBackoff(conn: Conn): Promise<void> {
    const started = conn.lostAt ?? Date.now();
    const timeout = this.opts.reconnectTimeoutMs ?? 60_000;
    for (let delay = BACKOFF_START_MS; ; delay = Math.min(delay * 2, BACKOFF_MAX_MS)) {
      if (this.closed) throw new SshError('SSH_CLOSED', 'the SSH connection pool is closed');
      try {
        const ep = { host: conn.host, port: this.opts.port, user: this.opts.user };
        const client = await connectSsh(ep, this.opts, this.auth, (lost, reason) => this.onLost(conn, lost, reason));
        if (this.closed) {
          client.end();
          throw new SshError('SSH_CLOSED', 'the SSH connection pool is closed');
        }
        conn.client = client;
        conn.lostAt = undefined;
        this.everConnected = true;
        return;
      } catch (err) {
        if (isFatalSshError(err) || (!this.everConnected && isUnreachableError(err)) || this.closed) throw err;
        const elapsed = Date.now() - started;
        if (elapsed >= timeout) {
          throw new SshError('SSH_CONNECT', `${(err as Error).message} (gave up after ${(elapsed / 1000).toFixed(1)} s)`, { cause: err });
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
    if (!this.closed) this.opts.onWarning?.(`SSH connection ${conn.index + 1} to ${conn.host} lost (${reason}); will reconnect`);
    this.wake();
  }
}
