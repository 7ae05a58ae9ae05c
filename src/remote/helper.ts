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
import type { SshPool } from '../transport/ssh-pool.js';
import { SshError, UsageError } from '../errors.js';
import { parseProbe, type RemoteProbe } from './probe.js';
import { shCommand, validateRemotePath } from './quote.js';
import { RemoteHelperError } from './remote-error.js';
import { lastLine, runRemote } from './run.js';
import { HelperWorker } from './worker.js';

/** Works from src/remote (tsx) and dist/remote (built): both are two levels below the repo. */
export const HELPER_SCRIPT_URL = new URL('../../native/ddt-helper.sh', import.meta.url);
const SCRIPT_NAME = 'ddt-helper.sh';
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

// Creates the dir privately, marks it as ddt's (cleanup refuses anything else), installs the
// script atomically, prints the absolute path. Arguments: $1 base dir ('' = ~/.ddt), $2 job id.
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
].join('; '); // one line: also survives csh-family login shells

export interface InstallOptions {
  jobId: string;
  /** Parent of the work dir on the remote host; default `$HOME/.ddt`. */
  workDirBase?: string;
  signal?: AbortSignal;
}

export class RemoteHelper {
  private workerCount = 0;

  private constructor(
    readonly pool: SshPool,
    readonly jobId: string,
    /** Absolute remote path of the work dir. */
    readonly workDir: string,
  ) {}

  static async install(pool: SshPool, opts: InstallOptions): Promise<RemoteHelper> {
    if (!JOB_ID.test(opts.jobId)) throw new UsageError('BAD_JOB_ID', `job id ${JSON.stringify(opts.jobId)} is not [A-Za-z0-9._-]`);
    if (opts.workDirBase !== undefined) validateRemotePath(opts.workDirBase, 'remote work dir');
    const script = await readFile(HELPER_SCRIPT_URL);
    const cmd = shCommand('sh', '-c', INSTALL_SCRIPT, 'ddt-install', opts.workDirBase ?? '', opts.jobId);
    const res = await runRemote(pool, cmd, { stdin: script, signal: opts.signal });
    const dir = res.stdout.trim();
    if (res.code !== 0 || !dir.startsWith('/') || dir.includes('\n')) {
      throw new SshError('REMOTE_SETUP', `cannot install the ddt helper on the remote host: ${lastLine(res.stderr) || `exit ${res.code}`}`);
    }
    return new RemoteHelper(pool, opts.jobId, dir);
  }

  get scriptPath(): string {
    return `${this.workDir}/${SCRIPT_NAME}`;
  }

  /** Facts about `target` and the remote host (size, mounts, tools); `remoteDir` for free space. */
  async probe(target: string, remoteDir?: string, signal?: AbortSignal): Promise<RemoteProbe> {
    validateRemotePath(target, 'remote target');
    const args = remoteDir === undefined ? [] : [validateRemotePath(remoteDir, 'remote dir')];
    const res = await this.run(['probe', target, ...args], signal);
    return parseProbe(res);
  }

  /** Create a sparse regular file of `size` bytes if `target` does not exist. True if created. */
  async createFile(target: string, size: number, signal?: AbortSignal): Promise<boolean> {
    validateRemotePath(target, 'remote target');
    if (!Number.isSafeInteger(size) || size < 0) throw new UsageError('BAD_SIZE', `bad size ${size}`);
    return (await this.run(['create-file', target, String(size)], signal)).includes('created=1');
  }

  /** A block worker on its own channel. `wait: false`: fail instead of waiting for a free slot. */
  async openWorker(target: string, opts: { signal?: AbortSignal; wait?: boolean } = {}): Promise<HelperWorker> {
    validateRemotePath(target, 'remote target');
    const cmd = shCommand('sh', this.scriptPath, 'serve', target, this.workDir);
    const ch = await this.pool.exec(cmd, opts);
    return new HelperWorker(this.pool, ch, `worker ${++this.workerCount}`);
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

  private async run(args: string[], signal?: AbortSignal): Promise<string> {
    const res = await runRemote(this.pool, shCommand('sh', this.scriptPath, ...args), { signal });
    if (res.code === 2) throw new UsageError('REMOTE_USAGE', lastLine(res.stderr) || `ddt-helper ${args[0]}: bad arguments`);
    if (res.code !== 0) {
      throw new RemoteHelperError('REMOTE_COMMAND', `ddt-helper ${args[0]} failed: ${lastLine(res.stderr) || `exit ${res.code ?? res.signal}`}`);
    }
    return res.stdout;
  }
}
