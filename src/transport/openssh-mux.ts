/**
 * One OpenSSH ControlMaster connection that `rsync` (the rsync engine) multiplexes its sessions
 * over, so the run opens exactly one TCP connection for rsync however many blocks it sends.
 *
 * - The master is `ssh -M … HOST cat` in the foreground, our child, with its stdin a pipe from
 *   us: if ddt dies, even by SIGKILL, the pipe closes, the remote `cat` ends, and the master
 *   exits once its last rsync session is done. No ControlPersist daemon outlives the run.
 * - Clients use `ControlMaster=no` and `ProxyCommand=false`: a client that finds no master fails
 *   instead of quietly opening its own TCP connection (which would break `--connections`).
 *   The owner then calls `ensure()`, which brings the master back with backoff (one at a time).
 * - Host-key and auth rules as in the native engine: the recorded known_hosts file(s) with
 *   StrictHostKeyChecking=yes, BatchMode (never a password or passphrase prompt), ssh-agent
 *   then the identity files. `-F /dev/null`: ~/.ssh/config was already resolved into the
 *   endpoint (HostName, Port, User, IdentityFile) exactly as for the ssh2 connections.
 * - The control socket lives in a private (0700) temp dir, removed by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { untilAborted } from '../abort.js';
import type { Endpoint } from './endpoint.js';
import { findOnPath, lastLineOf, runProcess } from './local-process.js';
import { MuxChannel } from './mux-channel.js';
import { clientArgs, masterArgs, muxDirPrefix, rsyncWord, socketBase } from './openssh-args.js';
import { keepaliveFor, retryInWindow, silentSince } from './reconnect.js';

export { muxDirBase, muxDirPrefix, sessionRefusal } from './openssh-args.js';
import { DdtError, isDdtError } from '../errors.js';

export interface MuxOptions {
  /** Give up bringing a lost master back after this long (exit 4, resumable). */
  reconnectTimeoutMs: number;
  /** Names the private socket dir, so a later run of the job removes one a killed run left. */
  jobId: string;
  onWarning?(msg: string): void;
  /** `ssh` to run [found on PATH]. */
  ssh?: string;
  /** What the connection carries, for messages ['rsync']. */
  purpose?: string;
  /** Ends the first connect at once (a signal during setup). */
  signal?: AbortSignal;
}

/** Host name clients pass: irrelevant to a mux client (the socket decides), never resolved. */
export const MUX_HOST = 'ddt-target';

const READY_TIMEOUT_MS = 90_000;
/** OpenSSH's ConnectTimeout (TCP and banner) of a first connect. */
const CONNECT_TIMEOUT_MS = 30_000;
const STOP_WAIT_MS = 5_000;
const STDERR_KEEP = 4096;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export class OpenSshMux {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private stderr = '';
  private connecting?: Promise<void>;
  private lostAt?: number;
  private stopped = false;
  readonly controlPath: string;

  private constructor(
    private readonly endpoint: Endpoint,
    private readonly opts: MuxOptions,
    private readonly ssh: string,
    private readonly dir: string,
  ) {
    this.controlPath = join(dir, 'cm');
  }

  private get purpose(): string {
    return this.opts.purpose ?? 'rsync';
  }

  /** Connect the master (fails fast on host key, auth, unreachable host). */
  static async start(endpoint: Endpoint, opts: MuxOptions): Promise<OpenSshMux> {
    const ssh = opts.ssh ?? findOnPath('ssh');
    if (!ssh) throw new DdtError('TOOL_MISSING', 'OpenSSH client (ssh) not found on PATH: install the openssh-client package');
    const dir = mkdtempSync(join(socketBase(), muxDirPrefix(opts.jobId)));
    const mux = new OpenSshMux(endpoint, opts, ssh, dir);
    try {
      await mux.launch();
    } catch (err) {
      await mux.stop();
      throw err;
    }
    return mux;
  }

  /** The `-e` command for rsync, which splits it on spaces and honours '…' and "…". */
  get rsyncShell(): string {
    return [this.ssh, ...this.clientArgs()].map(rsyncWord).join(' ');
  }

  /** A session over the master running `command` (one quoted remote shell line). Call `ensure()` first. */
  openSession(command: string): MuxChannel {
    return new MuxChannel(this.ssh, this.clientArgs(), MUX_HOST, command);
  }

  /** Ask the master whether it is alive; a master that does not answer is ended. */
  async check(): Promise<boolean> {
    if (!this.child) return false;
    const r = await runProcess(this.ssh, [...this.clientArgs(), '-O', 'check', MUX_HOST]).catch(() => undefined);
    if (r?.code === 0) return true;
    await this.end();
    return false;
  }

  /** Resolve when a master is up: the current one, or a new one after a loss (with backoff). */
  async ensure(signal?: AbortSignal): Promise<void> {
    if (this.stopped) throw new DdtError('CLOSED', `the OpenSSH connection for ${this.purpose} is closed`);
    if (this.child) return;
    this.connecting ??= this.reconnect().finally(() => (this.connecting = undefined));
    if (!signal) return this.connecting;
    await untilAborted(this.connecting, signal);
  }

  /** `ssh -O exit`, then wait for the master to go; removes the private socket dir. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.connecting?.catch(() => undefined); // a master being started sees `stopped` and ends
    if (this.child) {
      await runProcess(this.ssh, [...this.clientArgs(), '-O', 'exit', MUX_HOST]).catch(() => undefined);
      await this.end();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------------------------------

  private clientArgs(): string[] {
    return clientArgs(this.controlPath);
  }

  /** The keepalive that notices a dead link early enough in the reconnect window. */
  private get aliveMs(): number {
    return keepaliveFor(this.opts.reconnectTimeoutMs, this.endpoint.serverAliveIntervalMs);
  }

  private masterArgs(budgetMs: number): string[] {
    const timing = { connectTimeoutS: Math.ceil(Math.min(CONNECT_TIMEOUT_MS, budgetMs) / 1000), aliveIntervalS: Math.max(1, Math.round(this.aliveMs / 1000)) };
    return masterArgs(this.endpoint, this.controlPath, this.ssh, timing);
  }

  private async reconnect(): Promise<void> {
    const window = {
      since: this.lostAt ?? Date.now(),
      timeoutMs: this.opts.reconnectTimeoutMs,
      closed: () => this.stopped,
      fatal: (err: unknown) => !isDdtError(err, 'SSH_CONNECT'), // host key, auth: never retried
    };
    await retryInWindow(`the OpenSSH connection for ${this.purpose}`, window, (left) => this.launch(left));
    this.lostAt = undefined;
  }

  /**
   * Start a master and wait until its control socket is there (that is: authenticated), for at
   * most `budgetMs` (what is left of the reconnect window; a first connect has longer).
   */
  private async launch(budgetMs = READY_TIMEOUT_MS): Promise<void> {
    // A master killed hard leaves its socket; a new one could not bind over it.
    if (existsSync(this.controlPath)) unlinkSync(this.controlPath);
    this.stderr = '';
    // Own process group: a terminal's Ctrl-C reaches ddt, which then stops the master in order.
    const child = spawn(this.ssh, this.masterArgs(budgetMs), { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr = (this.stderr + s).slice(-STDERR_KEEP)));
    child.stdin!.on('error', () => undefined); // EPIPE once the master is gone
    let gone = false;
    const exited = new Promise<void>((resolve) => {
      child.once('error', (err) => {
        this.stderr += `\n${err.message}`;
        gone = true;
        resolve();
      });
      child.once('exit', () => {
        gone = true;
        resolve();
      });
    });
    child.unref();
    (child.stderr as unknown as { unref?(): void }).unref?.();
    (child.stdin as unknown as { unref?(): void }).unref?.();
    const waitMs = Math.min(READY_TIMEOUT_MS, budgetMs);
    const deadline = Date.now() + waitMs;
    while (!gone && !existsSync(this.controlPath)) {
      if (this.stopped || this.opts.signal?.aborted || Date.now() > deadline) {
        child.kill('SIGKILL');
        // Unreferenced, the child would not keep the process alive until its exit is seen.
        child.ref();
        await exited;
        if (this.stopped) throw new DdtError('CLOSED', `the OpenSSH connection for ${this.purpose} is closed`);
        this.opts.signal?.throwIfAborted();
        throw new DdtError('SSH_CONNECT', `OpenSSH connection to ${this.endpoint.hosts[0]} for ${this.purpose} not ready after ${(waitMs / 1000).toFixed(1)} s`);
      }
      // Short polls: the first block waits for this socket (a 20 ms poll cost ≈ 10 ms on average).
      await sleep(5);
    }
    if (gone) {
      await exited;
      throw this.failure();
    }
    this.child = child;
    this.exited = exited;
    void exited.then(() => {
      if (this.child !== child) return;
      this.child = undefined;
      this.exited = undefined;
      if (this.stopped) return;
      // The window starts when data stopped moving: a master that timed out had waited for it.
      this.lostAt ??= silentSince(this.stderr, this.aliveMs);
      const why = lastLineOf(this.stderr);
      this.opts.onWarning?.(`the OpenSSH connection that carries ${this.purpose} was lost${why ? ` (${why})` : ''}; reconnecting`);
    });
  }

  /** End the master process (its TCP connection with it) and wait until it is gone. */
  private async end(): Promise<void> {
    const child = this.child;
    const exited = this.exited;
    if (!child || !exited) return;
    child.stdin?.end();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_WAIT_MS);
    await exited;
    clearTimeout(timer);
  }

  private failure(): DdtError {
    const text = this.stderr;
    const line = lastLineOf(text) || 'ssh exited';
    const where = `${this.endpoint.user}@${this.endpoint.hosts[0]}:${this.endpoint.port}`;
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(text)) {
      return new DdtError('SSH_HOST_KEY_CHANGED', `OpenSSH (${this.purpose}): the host key of ${where} changed: ${line}`);
    }
    if (/host key is known|Host key verification failed/i.test(text)) {
      return new DdtError('SSH_HOST_KEY_UNKNOWN', `OpenSSH (${this.purpose}) does not know the host key of ${where} in the known_hosts file(s) ddt uses: ${line}`);
    }
    if (/Permission denied|Too many authentication failures/i.test(text)) {
      return new DdtError('SSH_AUTH', `OpenSSH (${this.purpose}) could not log in to ${where}: ${line}`);
    }
    return new DdtError('SSH_CONNECT', `OpenSSH connection to ${where} for ${this.purpose} failed: ${line}`);
  }
}
