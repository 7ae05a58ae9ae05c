/**
 * The remote helper: `ddt-helper.sh` uploaded once per run into a private work directory, then
 * used for the probe, the block workers and housekeeping.
 *
 * Work directory: `$HOME/.ddt/<jobId>` (mode 700) by default, not /tmp: the user owns $HOME,
 * so a predictable name cannot be pre-created or symlinked by someone else, and tmp cleaners
 * (systemd-tmpfiles, reboot-time tmpfs) cannot delete the helper or its PID list during a long
 * run or before a resume, which needs that list to end stale helpers.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import type { ZeroMode } from '../block/types.js';
import type { ChannelSource, ExecChannel } from '../transport/channels.js';
import type { SshPool } from '../transport/ssh-pool.js';
import { parseProbe, type RemoteProbe } from './probe.js';
import { shCommand, validateRemotePath } from './quote.js';
import { howEnded, lastLine, runRemote, type RunResult } from './run.js';
import { HelperWorker } from './worker.js';

/** The joined helper script (native/helper/*, joined by the build): from src/remote (tsx) and from the bundle in dist/cli, both two levels below the repo. */
export const HELPER_SCRIPT_URL = new URL('../../dist/ddt-helper.sh', import.meta.url);
const SCRIPT_NAME = 'ddt-helper.sh';

let scriptRead: Promise<Buffer> | undefined;

/**
 * The script's bytes: read once per process (the install uploads them, the hasher's self-test
 * hashes them, the prehash names its kept copy after them).
 */
export function helperScript(): Promise<Buffer> {
  return (scriptRead ??= readFile(HELPER_SCRIPT_URL));
}

/** The name of the script's copy beside the kept hashers: named by its bytes, as they are. */
export function helperCacheName(script: Buffer): string {
  return `ddt-helper-${createHash('sha256').update(script).digest('hex').slice(0, 16)}.sh`;
}
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

// Creates the dir privately, marks it as ddt's (cleanup refuses anything else), installs the
// script atomically, prints the absolute path, then where the script came from (`kept` or
// `sent`, see below), then on one line the streaming hashers kept in the base's .hashers.
// Arguments: $1 base dir ('' = ~/.ddt), $2 job id, $3 the cache names of
// this ddt's hasher builds ('' = none), $4 their self-test's expected answer, $5 the name of
// this script's copy beside the kept hashers ('' = none), then optionally `sudo` or `-` and the
// probe's arguments: its answer follows. With names, the kept hasher for
// this machine's architecture (if any) is self-tested beside the probe (`hasher-install … use`,
// as the client would ask for it next), and its name and answer come first: `NAME hasher=ok`,
// `NAME hasher=failed …`, or `- hasher=none` where none is kept.
const INSTALL_SCRIPT = [
  'set -e',
  'umask 077',
  'base=${1:-$HOME/.ddt}',
  'mkdir -p "$base"',
  'd=$base/$2',
  'mkdir -p "$d"',
  'chmod 700 "$d"',
  ': >"$d/.ddt-workdir"',
  // A later run on this host finds the very same script beside the kept hashers, named by its
  // bytes: it is copied from there once those bytes' checksum says it is that script, instead of
  // waiting for the copy on stdin (the exec's answer to the client, then the upload: a round trip
  // and more on a long link). No checksum tool, another name, other bytes: stdin's copy.
  // A copy that goes between the check and the copying (another ddt version's install replacing
  // it) is no failure either: stdin's copy then. Either way stdin is closed after: nothing
  // later reads what may still be arriving.
  'k= h=',
  'x=${5#ddt-helper-}',
  'x=${x%.sh}',
  'if [ ${#x} -eq 16 ] && [ -f "$base/.hashers/$5" ]; then h=$(sha256sum <"$base/.hashers/$5" 2>/dev/null) || h=; case $h in "$x"*) k=$base/.hashers/$5 ;; esac; fi',
  'if [ -n "$k" ] && cp "$k" "$d/ddt-helper.sh.new" 2>/dev/null; then how=kept; else cat >"$d/ddt-helper.sh.new"; how=sent; fi',
  'exec </dev/null',
  'mv -f "$d/ddt-helper.sh.new" "$d/ddt-helper.sh"',
  'cd "$d"',
  'pwd -P',
  'echo "$how"',
  'for f in "$base"/.hashers/ddt-hash-*; do if [ -f "$f" ]; then printf "%s " "${f##*/}"; fi; done',
  'echo',
  'hn=$3',
  'he=$4',
  // The copy a later run's prehash and install start from: kept where the hashers are (made as
  // keep_hasher makes it), replacing other versions' copies, and one whose bytes did not match
  // its name above, atomically; where it cannot be, a run simply has no prehash.
  'if [ -n "$5" ] && { [ -d "$base/.hashers" ] || mkdir -m 755 "$base/.hashers" 2>/dev/null; } && [ -w "$base/.hashers" ] && { [ ! -f "$base/.hashers/$5" ] || { [ -z "$k" ] && [ -n "$h" ]; }; }; then ' +
    '{ rm -f "$base/.hashers"/ddt-helper-*.sh && cp "$d/ddt-helper.sh" "$base/.hashers/$5.new" && mv -f "$base/.hashers/$5.new" "$base/.hashers/$5"; } 2>/dev/null || rm -f "$base/.hashers/$5.new"; fi',
  'shift 5',
  '[ $# -eq 0 ] && exit 0',
  // The probe in the same round trip, through `sudo -n` where the helper runs as root. Its
  // staging dir defaults to the login user's home (under sudo, $HOME is root's), where SFTP,
  // which runs as the login user, can write.
  'r=$1',
  'shift',
  '[ $# -eq 1 ] && set -- "$1" "$HOME"',
  's=',
  '[ "$r" = sudo ] && s="sudo -n"',
  '[ -n "$hn" ] || exec $s sh "$d/ddt-helper.sh" probe "$@"',
  'c=',
  'm=$(uname -m 2>/dev/null) || m=unknown',
  'for n in $hn; do case $n in ddt-hash-"$m"-*) [ -f "$base/.hashers/$n" ] && c=$n ;; esac; done',
  'if [ -z "$c" ]; then echo - hasher=none; exec $s sh "$d/ddt-helper.sh" probe "$@"; fi',
  // (`&` separates the next command itself: `&;` would be a syntax error)
  '{ $s sh "$d/ddt-helper.sh" hasher-install "$d" "$he" "$base/.hashers/$c" use >"$d/hasher.early" 2>&1 || :; } & rc=0',
  'out=$($s sh "$d/ddt-helper.sh" probe "$@") || rc=$?',
  'wait',
  'a="hasher=failed no answer"',
  '{ while IFS= read -r l; do a=$l; done <"$d/hasher.early"; } 2>/dev/null || :',
  'rm -f "$d/hasher.early"',
  'printf "%s %s\\n%s\\n" "$c" "$a" "$out"',
  'exit $rc',
].join('; '); // one line: also survives csh-family login shells

export interface HelperOptions {
  jobId: string;
  /** Parent of the work dir on the remote host; default `$HOME/.ddt`. */
  workDirBase?: string;
  /** Run the helper through `sudo -n` (a login user who may write the device only as root). */
  sudo?: boolean;
  signal?: AbortSignal;
}

export class RemoteHelper {
  private workers = 0;
  /** The last probe's host facts and the path it probed: workers serving that path are given them. */
  private facts?: { path: string; facts: string };
  /**
   * The algo the helper hashes units with fastest where that is not the job's own: xxh64 where
   * ddt-hash runs (set by installHasher) or xxhsum works.
   */
  unitAlgo?: ChecksumAlgo;

  private constructor(
    /** Where setup and housekeeping commands run (the ssh2 pool). */
    readonly control: SshPool,
    readonly jobId: string,
    /** Absolute remote path of the work dir. */
    readonly workDir: string,
    private readonly sudo: boolean,
    /** The names of the hashers kept in `hasherCache` when the helper was installed. */
    readonly cachedHashers: string[],
    /** The install's probe answer, handed out once by `probe()` for the same arguments. */
    private early?: { args: string[]; result: RemoteProbe | Error },
    /** The kept hasher the install self-tested beside the probe (`hasher-install … use`), and its answer. */
    readonly keptHasher?: { name: string; answer: string },
    /** Where the installed script came from: the copy kept on the host from an earlier run, or the bytes sent now. */
    readonly scriptFrom: 'kept' | 'sent' = 'sent',
  ) {}

  /**
   * Upload the script. With `probe` (a target and maybe a staging dir), probe in the same round
   * trip: one exec channel less before the first block. With `hasher` too (the cache names of
   * this ddt's ddt-hash builds, and the self-test's expected answer), the kept copy for the
   * host's architecture is self-tested and installed beside the probe: no round trip of its
   * own before the hashing can start.
   */
  static async install(control: SshPool, o: HelperOptions & { probe?: { target: string; remoteDir?: string }; hasher?: { names: string[]; expect: string } }): Promise<RemoteHelper> {
    if (!JOB_ID.test(o.jobId)) throw new DdtError('BAD_OPTION', `job id ${JSON.stringify(o.jobId)} is not [A-Za-z0-9._-]`);
    if (o.workDirBase !== undefined) validateRemotePath(o.workDirBase, 'remote work dir');
    const probeArgs = o.probe ? probeArgsOf(o.probe.target, o.probe.remoteDir) : [];
    const script = await helperScript();
    const probe = o.probe ? [o.sudo ? 'sudo' : '-', ...probeArgs] : [];
    const hasher = o.probe && o.hasher?.names.length ? o.hasher : undefined;
    const cmd = shCommand('sh', '-c', INSTALL_SCRIPT, 'ddt-install', o.workDirBase ?? '', o.jobId, hasher?.names.join(' ') ?? '', hasher?.expect ?? '', hasher ? helperCacheName(script) : '', ...probe);
    const res = await runRemote(control, cmd, { stdin: script, signal: o.signal });
    // The path and the kept hashers are printed once the install has worked; with a probe, its
    // answer and exit status follow.
    const [dir = '', how, hashers, ...rest] = res.stdout.split('\n');
    if ((!o.probe && res.code !== 0) || !dir.startsWith('/') || hashers === undefined) {
      throw new DdtError('SSH_SETUP', `cannot install the ddt helper on the remote host: ${lastLine(res.stderr) || howEnded(res)}`);
    }
    let kept: RemoteHelper['keptHasher'];
    if (hasher) {
      const [name = '', ...answer] = (rest.shift() ?? '').split(' ');
      if (hasher.names.includes(name)) kept = { name, answer: answer.join(' ') };
    }
    let early: RemoteHelper['early'];
    if (o.probe) {
      let result: RemoteProbe | Error;
      try {
        result = parseProbe(checkedOutput('probe', { ...res, stdout: rest.join('\n') }, o.sudo === true));
      } catch (err) {
        result = err as Error;
      }
      early = { args: probeArgs, result };
    }
    return new RemoteHelper(control, o.jobId, dir, o.sudo === true, hashers.split(' ').filter(Boolean), early, kept, how === 'kept' ? 'kept' : 'sent');
  }

  /** Where streaming hashers that passed their self-test are kept for the next run on this host (and a copy of this script). */
  get hasherCache(): string {
    return `${this.workDir.slice(0, this.workDir.lastIndexOf('/'))}/.hashers`;
  }

  get scriptPath(): string {
    return `${this.workDir}/${SCRIPT_NAME}`;
  }

  /** The remote command line of a helper subcommand (through `sudo -n` where asked). */
  command(...args: string[]): string {
    return shCommand(...(this.sudo ? ['sudo', '-n'] : []), 'sh', this.scriptPath, ...args);
  }

  /**
   * The command of a block worker serving `target` (written for send, read for pull). `zeros`:
   * what its writes do with zero ranges (holes and offload, unmapping too, or zeros written).
   */
  serveCommand(target: string, zeros: ZeroMode = 'write'): string {
    const facts = this.facts?.path === target ? [this.facts.facts] : [];
    return this.command('serve', validateRemotePath(target, 'remote path'), this.workDir, zeros, ...facts);
  }

  /** Facts about `target` and the remote host (size, mounts, tools); `remoteDir` for free space. */
  async probe(target: string, remoteDir?: string, signal?: AbortSignal): Promise<RemoteProbe> {
    const args = probeArgsOf(target, remoteDir);
    const early = this.early;
    let probe: RemoteProbe;
    if (early && early.args.join('\0') === args.join('\0')) {
      this.early = undefined;
      if (early.result instanceof Error) throw early.result;
      probe = early.result;
    } else probe = parseProbe(await this.run(['probe', ...args], signal));
    this.facts = probe.hostFacts ? { path: target, facts: probe.hostFacts } : undefined;
    return probe;
  }

  /** A block worker on a channel of `channels`. `wait: false`: fail instead of waiting for a free slot. */
  async openWorker(target: string, channels: ChannelSource, o: { signal?: AbortSignal; wait?: boolean; label?: string; zeros?: ZeroMode } = {}): Promise<HelperWorker> {
    const label = o.label ?? `worker ${++this.workers}`;
    let worker: HelperWorker | undefined;
    const ch = await channels.exec(this.serveCommand(target, o.zeros), {
      ...o,
      ready: async (ch: ExecChannel) => {
        worker = new HelperWorker(channels, ch, label);
        await worker.ready(o.signal ?? new AbortController().signal);
      },
    });
    return worker ?? new HelperWorker(channels, ch, label);
  }

  /**
   * Create a sparse regular file of `size` bytes if `target` does not exist. True if created.
   * `check`: only refuse (exit 2) where it could not be (no such directory, not writable).
   */
  async createFile(target: string, size: number, signal?: AbortSignal, o: { check?: boolean } = {}): Promise<boolean> {
    validateRemotePath(target, 'remote target');
    if (!Number.isSafeInteger(size) || size < 0) throw new DdtError('BAD_SIZE', `bad size ${size}`);
    // Not run twice: a second run would answer created=0 for the file the first one made.
    return (await this.run(['create-file', target, String(size), ...(o.check ? ['check'] : [])], signal, { once: true })).includes('created=1');
  }

  /** End helpers a previous run of this job left behind (by recorded PID). Returns how many. */
  async killStale(signal?: AbortSignal): Promise<number> {
    const out = await this.run(['kill-stale', this.workDir, this.jobId], signal);
    return Number(/killed=(\d+)/.exec(out)?.[1] ?? 0);
  }

  /**
   * Remove the work dir, this run's or `dir` (another job's on this host), after ending any
   * helper still running from it: how many were ended, whether there was a dir to remove.
   */
  async cleanup(signal?: AbortSignal, dir = this.workDir): Promise<{ killed: number; removed: boolean }> {
    const out = await this.run(['cleanup', validateRemotePath(dir, 'work dir')], signal);
    return { killed: Number(/killed=(\d+)/.exec(out)?.[1] ?? 0), removed: /removed=1/.test(out) };
  }

  /**
   * A helper subcommand. One whose channel ended without an exit status (its connection
   * dropped) runs once more on the reconnected pool, unless `once`.
   */
  async run(args: string[], signal?: AbortSignal, o: { once?: boolean } = {}): Promise<string> {
    const cmd = this.command(...args);
    let res = await runRemote(this.control, cmd, { signal });
    if (res.code === null && !res.signal && !o.once) res = await runRemote(this.control, cmd, { signal });
    return checkedOutput(args[0]!, res, this.sudo);
  }
}

function probeArgsOf(target: string, remoteDir?: string): string[] {
  return [validateRemotePath(target, 'remote target'), ...(remoteDir === undefined ? [] : [validateRemotePath(remoteDir, 'remote dir')])];
}

/** A sudo that wants a password says so on stderr; nothing else of ours mentions one. */
const SUDO_PASSWORD = /sudo: (a password is required|a terminal is required)|sudo:.*(not allowed|may not run|not in the sudoers)/i;

/** A helper subcommand's stdout, or its failure: exit 2 is a usage error (exit 2 of ddt too). */
function checkedOutput(sub: string, res: RunResult, sudo: boolean): string {
  if (sudo && res.code !== 0 && SUDO_PASSWORD.test(res.stderr)) {
    throw new DdtError(
      'SSH_SUDO',
      `sudo on the remote host refused to run the ddt helper without a password (${lastLine(res.stderr)}): allow it with NOPASSWD in sudoers for this user, or log in as root`,
    );
  }
  if (res.code === 2) throw new DdtError('REMOTE_USAGE', lastLine(res.stderr) || `ddt-helper ${sub}: bad arguments`);
  if (res.code !== 0) {
    throw new DdtError('REMOTE_COMMAND', `ddt-helper ${sub} failed: ${lastLine(res.stderr) || howEnded(res)}`);
  }
  return res.stdout;
}
