/**
 * The remote helper: `native/ddt-helper.sh` uploaded once per run into a private work
 * directory, then used for the probe, the block workers and housekeeping (DESIGN §4).
 *
 * Work directory: `$HOME/.ddt/<jobId>` (mode 700) by default, not /tmp: the user owns $HOME,
 * so a predictable name cannot be pre-created or symlinked by someone else, and tmp cleaners
 * (systemd-tmpfiles, reboot-time tmpfs) cannot delete the helper or its PID list during a long
 * run or before a resume, which needs that list to end stale helpers.
 */
import { readFile } from 'node:fs/promises';
import type { ClientChannel } from 'ssh2';
import type { SshPool } from '../transport/ssh-pool.js';
import { SshError, UsageError } from '../errors.js';
import { parseProbe, type RemoteProbe } from './probe.js';
import { shCommand, validateRemotePath } from './quote.js';
import { RemoteHelperError } from './remote-error.js';
import { lastLine, runRemote } from './run.js';
import { HelperWorker } from './worker.js';
import { sessionRefusal, type OpenSshMux } from '../transport/openssh-mux.js';
import type { MuxChannel } from '../transport/mux-channel.js';

/** Works from src/remote (tsx) and from the bundle, dist/cli/ddt.cjs: both are two levels below the repo. */
export const HELPER_SCRIPT_URL = new URL('../../dist/ddt-helper.sh', import.meta.url);
const SCRIPT_NAME = 'ddt-helper.sh';
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Sessions opened on a master before giving up on a worker (the master may be reconnecting). */
const MUX_OPEN_ATTEMPTS = 4;

// Creates the dir privately, marks it as ddt's (cleanup refuses anything else), installs the
// script atomically, prints the absolute path. Arguments: $1 base dir ('' = ~/.ddt), $2 job id,
// then optionally the probe's arguments: its answer follows the path.
const INSTALL_SCRIPT = [
  'set -e',
  'umask 077',
  'base=${1:-$HOME/.ddt}',
  'mkdir -p "$base"',
  'd=$base/$2',
  'mkdir -p "$d"',
  'chmod 700 "$d"',
  ': >"$d/.ddt-workdir"',
  'cat >"$d/ddt-helper.sh.new"',
  'mv -f "$d/ddt-helper.sh.new" "$d/ddt-helper.sh"',
  'cd "$d"',
  'pwd -P',
  // $3 [$4]: probe TARGET [REMOTE_DIR] in the same round trip.
  'shift 2',
  '[ $# -eq 0 ] || exec sh "$d/ddt-helper.sh" probe "$@"',
].join('; '); // one line: also survives csh-family login shells

export interface InstallOptions {
  jobId: string;
  /** Parent of the work dir on the remote host; default `$HOME/.ddt`. */
  workDirBase?: string;
  signal?: AbortSignal;
  /**
   * Probe this target (and remote dir) in the same round trip as the install: one exec channel
   * less before the first block. `probe()` with the same arguments then answers from it, once.
   */
  probe?: { target: string; remoteDir?: string };
}

export class RemoteHelper {
  private workerCount = 0;
  /**
   * `--via openssh`: block workers run as sessions over these OpenSSH masters (each carrying up
   * to `sessionsPerMux`) instead of ssh2 channels; the ssh2 pool keeps the probe and housekeeping.
   */
  private muxes: Array<{ mux: OpenSshMux; workers: Set<HelperWorker>; opening: number; capacity: number; warned: boolean }> = [];
  private onMuxWarning?: (msg: string) => void;
  /** The install's probe (InstallOptions.probe): its arguments and what it gave. */
  private installProbe?: { target: string; remoteDir?: string; result: RemoteProbe | Error };
  /** The host runs perl (from the latest probe): whole blocks go as `X`, zero runs without their bytes. */
  private perl = false;

  private constructor(
    readonly pool: SshPool,
    readonly jobId: string,
    /** Absolute remote path of the work dir. */
    readonly workDir: string,
  ) {}

  static async install(pool: SshPool, opts: InstallOptions): Promise<RemoteHelper> {
    if (!JOB_ID.test(opts.jobId)) throw new UsageError('BAD_JOB_ID', `job id ${JSON.stringify(opts.jobId)} is not [A-Za-z0-9._-]`);
    if (opts.workDirBase !== undefined) validateRemotePath(opts.workDirBase, 'remote work dir');
    const probeArgs = opts.probe ? probeArgsOf(opts.probe.target, opts.probe.remoteDir) : [];
    const script = await readFile(HELPER_SCRIPT_URL);
    const cmd = shCommand('sh', '-c', INSTALL_SCRIPT, 'ddt-install', opts.workDirBase ?? '', opts.jobId, ...probeArgs);
    const res = await runRemote(pool, cmd, { stdin: script, signal: opts.signal });
    // The path is printed once the install has worked; with a probe, its answer and exit status follow.
    const newline = res.stdout.indexOf('\n');
    const dir = opts.probe ? res.stdout.slice(0, Math.max(newline, 0)) : res.stdout.trim();
    if ((!opts.probe && res.code !== 0) || !dir.startsWith('/') || dir.includes('\n')) {
      throw new SshError('REMOTE_SETUP', `cannot install the ddt helper on the remote host: ${lastLine(res.stderr) || `exit ${res.code}`}`);
    }
    const helper = new RemoteHelper(pool, opts.jobId, dir);
    if (opts.probe) {
      let result: RemoteProbe | Error;
      try {
        result = parseProbe(checkedOutput('probe', { ...res, stdout: res.stdout.slice(newline + 1) }));
      } catch (err) {
        result = err as Error;
      }
      helper.installProbe = { ...opts.probe, result };
    }
    return helper;
  }

  get scriptPath(): string {
    return `${this.workDir}/${SCRIPT_NAME}`;
  }

  /** Facts about `target` and the remote host (size, mounts, tools); `remoteDir` for free space. */
  async probe(target: string, remoteDir?: string, signal?: AbortSignal): Promise<RemoteProbe> {
    const early = this.installProbe;
    if (early && early.target === target && early.remoteDir === remoteDir) {
      this.installProbe = undefined;
      if (early.result instanceof Error) throw early.result;
      this.perl = early.result.perl;
      return early.result;
    }
    const result = parseProbe(await this.run(['probe', ...probeArgsOf(target, remoteDir)], signal));
    this.perl = result.perl;
    return result;
  }

  /**
   * Whole blocks may go as `X` (frames: zero runs inside a block are sent as a length, not as
   * bytes): the probed host runs perl, which decodes a block's frames in one process.
   * Without perl `X` still works, one dd per frame: too slow to choose.
   */
  get sparseWrites(): boolean {
    return this.perl;
  }

  /** Create a sparse regular file of `size` bytes if `target` does not exist. True if created. */
  async createFile(target: string, size: number, signal?: AbortSignal): Promise<boolean> {
    validateRemotePath(target, 'remote target');
    if (!Number.isSafeInteger(size) || size < 0) throw new UsageError('BAD_SIZE', `bad size ${size}`);
    // Not run twice: a second run would answer created=0 for the file the first one made.
    return (await this.run(['create-file', target, String(size)], signal, { once: true })).includes('created=1');
  }

  /** A block worker on its own channel. `wait: false`: fail instead of waiting for a free slot. */
  async openWorker(target: string, opts: { signal?: AbortSignal; wait?: boolean } = {}): Promise<HelperWorker> {
    const cmd = this.serveCommand(target);
    if (this.muxes.length) return this.openMuxWorker(cmd, opts.signal);
    const ch = await this.pool.exec(cmd, opts);
    return new HelperWorker<ClientChannel>(this.pool, ch, `worker ${++this.workerCount}`);
  }

  /**
   * A worker on the ssh2 connection even when block workers run over OpenSSH (`--via openssh`
   * leaves that connection idle during the transfer): the flusher of deferred writes.
   */
  async openControlWorker(target: string, opts: { signal?: AbortSignal; wait?: boolean } = {}): Promise<HelperWorker> {
    const ch = await this.pool.exec(this.serveCommand(target), opts);
    return new HelperWorker<ClientChannel>(this.pool, ch, 'flusher');
  }

  private serveCommand(target: string): string {
    validateRemotePath(target, 'remote target');
    return shCommand('sh', this.scriptPath, 'serve', target, this.workDir);
  }

  /** Carry block workers over these OpenSSH masters from now on, up to `sessions` on each. */
  useOpenSsh(muxes: OpenSshMux[], sessions: number, onWarning?: (msg: string) => void): void {
    this.muxes = muxes.map((mux) => ({ mux, workers: new Set<HelperWorker>(), opening: 0, capacity: Math.max(1, sessions), warned: false }));
    this.onMuxWarning = onWarning;
  }

  /** The OpenSSH masters in use (empty: workers use ssh2 channels). */
  get openSshMasters(): OpenSshMux[] {
    return this.muxes.map((m) => m.mux);
  }

  /** How many block workers can run at once: channels of the pool, or sessions of the masters. */
  workerCapacity(): number {
    if (!this.muxes.length) return this.pool.capacity();
    return this.muxes.reduce((n, m) => n + m.capacity, 0);
  }

  /**
   * A worker on the least-loaded master. The session must answer a no-op request first: a
   * server at its MaxSessions refuses the session, and that master then carries fewer.
   */
  private async openMuxWorker(cmd: string, signal?: AbortSignal): Promise<HelperWorker> {
    // A worker counts while it lives: one that died (its master's connection dropped, say)
    // frees its place at once, before its client process has even exited.
    const load = (m: (typeof this.muxes)[number]) => {
      for (const w of m.workers) if (!w.alive) m.workers.delete(w);
      return m.workers.size + m.opening;
    };
    const free = this.muxes.filter((m) => load(m) < m.capacity);
    if (!free.length) throw new SshError('SSH_NO_CHANNEL', 'every OpenSSH session is busy');
    const m = free.reduce((a, b) => (load(b) < load(a) ? b : a));
    m.opening++;
    try {
      for (let attempt = 1; ; attempt++) {
        await m.mux.ensure(signal);
        const session = m.mux.openSession(cmd);
        const worker = new HelperWorker<MuxChannel>({ release: (ch) => ch.close() }, session, `worker ${++this.workerCount}`);
        try {
          await worker.ready(signal ?? new AbortController().signal);
        } catch (err) {
          worker.destroy('not ready');
          // The client's diagnostics are complete once it has exited.
          await Promise.race([session.closed, new Promise((r) => setTimeout(r, 2000))]);
          const why = sessionRefusal(worker.stderrTail);
          if (why) {
            m.capacity = Math.max(1, load(m) - 1);
            if (!m.warned) {
              m.warned = true;
              this.onMuxWarning?.(`the server refused an OpenSSH session (MaxSessions?): using ${m.capacity} session(s) on that connection`);
            }
            throw new SshError('SSH_NO_CHANNEL', `the server refused an OpenSSH session (MaxSessions?): ${why}`, { cause: err });
          }
          // The master may be gone with its connection: a dead one is ended here and brought
          // back (with backoff, up to --reconnect-timeout) by ensure() on the next attempt.
          if (attempt < MUX_OPEN_ATTEMPTS && !(await m.mux.check())) continue;
          throw err;
        }
        m.workers.add(worker);
        return worker;
      }
    } finally {
      m.opening--;
    }
  }

  /** End helpers a previous run of this job left behind (by recorded PID). Returns how many. */
  async killStale(signal?: AbortSignal): Promise<number> {
    const out = await this.run(['kill-stale', this.workDir, this.jobId], signal);
    return Number(/killed=(\d+)/.exec(out)?.[1] ?? 0);
  }

  /** Remove the work dir (after ending any helper still running from it). */
  async cleanup(signal?: AbortSignal): Promise<void> {
    await this.run(['cleanup', this.workDir], signal);
  }

  /**
   * A helper subcommand. One whose channel ended without an exit status (its connection
   * dropped) runs once more on the reconnected pool, unless `once`.
   */
  private async run(args: string[], signal?: AbortSignal, o: { once?: boolean } = {}): Promise<string> {
    const cmd = shCommand('sh', this.scriptPath, ...args);
    let res = await runRemote(this.pool, cmd, { signal });
    if (res.code === null && !res.signal && !o.once) res = await runRemote(this.pool, cmd, { signal });
    return checkedOutput(args[0]!, res);
  }
}

function probeArgsOf(target: string, remoteDir?: string): string[] {
  return [validateRemotePath(target, 'remote target'), ...(remoteDir === undefined ? [] : [validateRemotePath(remoteDir, 'remote dir')])];
}

/** A helper subcommand's stdout, or its failure: exit 2 is a usage error (exit 2 of ddt too). */
function checkedOutput(sub: string, res: { code: number | null; signal?: string | null; stdout: string; stderr: string }): string {
  if (res.code === 2) throw new UsageError('REMOTE_USAGE', lastLine(res.stderr) || `ddt-helper ${sub}: bad arguments`);
  if (res.code !== 0) {
    const how = res.code !== null ? `exit ${res.code}` : res.signal ? `killed by ${res.signal}` : 'the channel closed without an exit status';
    throw new RemoteHelperError('REMOTE_COMMAND', `ddt-helper ${sub} failed: ${lastLine(res.stderr) || how}`);
  }
  return res.stdout;
}
