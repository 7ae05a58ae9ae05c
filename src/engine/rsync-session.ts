/**
 * The rsync engine's run-wide parts (DESIGN §2 `--engine rsync`, the original script's path):
 * local and remote rsync checked before anything is written, the local staging dir, the remote
 * staging dir's space, and the one OpenSSH ControlMaster connection every rsync shares.
 *
 * Connection budget: the ssh2 pool (helper channels: probe, `F`/`Z`/`H` requests) gets
 * `--connections` − 1 TCP connections and the ControlMaster the last one, so the run never has
 * more than `--connections`; the rsync engine therefore needs `--connections` ≥ 2.
 */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { WaitLine } from '../abort.js';
import { DdtError, ExitCode, UsageError } from '../errors.js';
import { formatBytes } from '../progress/format.js';
import type { RemoteHelper } from '../remote/helper.js';
import { shCommand } from '../remote/quote.js';
import { RemoteHelperError } from '../remote/remote-error.js';
import { lastLine, runRemote } from '../remote/run.js';
import { stagingDirOf } from '../remote/sftp-target.js';
import { resolveReserve } from '../remote/staging-space.js';
import type { Endpoint } from '../transport/endpoint.js';
import { findOnPath, lastLineOf, removeLeftovers, runProcess } from '../transport/local-process.js';
import { muxDirBase, muxDirPrefix, MUX_HOST, OpenSshMux } from '../transport/openssh-mux.js';
import type { SshPool } from '../transport/ssh-pool.js';
import { LocalStaging, stagingPrefix } from './local-staging.js';

export type EngineName = 'native' | 'rsync';
export const ENGINES: readonly EngineName[] = ['native', 'rsync'];

export function engineOf(v: unknown): EngineName {
  if (v === undefined) return 'native';
  if (v === 'native' || v === 'rsync') return v;
  throw new UsageError('BAD_ENGINE', `unknown engine ${JSON.stringify(v)}: use native or rsync`);
}

/** TCP connections the ssh2 pool may open: with rsync, one of `connections` is the ControlMaster's. */
export function poolConnectionsFor(engine: EngineName, connections: number): number {
  if (engine !== 'rsync') return connections;
  if (connections < 2) {
    throw new UsageError(
      'RSYNC_CONNECTIONS',
      '--engine rsync needs --connections 2 or more: one OpenSSH connection carries rsync, the others the ddt helper that writes and checks the blocks',
    );
  }
  return connections - 1;
}

/**
 * rsync compressors for `--compress auto`: they cost next to nothing (measured on loopback: a
 * 512 MiB mixed image took 1.1–1.4 s with zstd, 1.4–2.2 s with lz4, 1.6–2.8 s without -z, but
 * 16 s with zlib, the only one before rsync 3.2). So `-z` only when both ends have one of these.
 */
const FAST_COMPRESSORS = ['zstd', 'lz4'];

export type CompressMode = 'none' | 'gzip' | 'auto';

/** rsync arguments for `--compress` given both ends' `Compress list:` (empty: rsync < 3.2). */
export function rsyncCompression(mode: CompressMode, local: string[], remote: string[]): string[] {
  if (mode === 'none') return [];
  if (mode === 'auto') {
    const fast = FAST_COMPRESSORS.find((c) => local.includes(c) && remote.includes(c));
    return fast ? ['-z', `--compress-choice=${fast}`] : [];
  }
  // gzip: zlib (deflate), what the original script's --compress used.
  return local.includes('zlib') && remote.includes('zlib') ? ['-z', '--compress-choice=zlib'] : ['-z'];
}
/** A master lost this many times during one block's rsync: give the block back to the engine. */
const MAX_MASTER_LOSSES = 5;
const MAX_REFUSALS = 10;

export interface LocalRsync {
  rsync: string;
  ssh: string;
  /** rsync's `Compress list:` (3.2+; empty for older rsync). */
  compressors: string[];
}

/** `rsync --version` → the names under `Compress list:`. */
export function compressorsOf(versionText: string): string[] {
  const m = /^Compress list:\s*\n\s*(.+)$/m.exec(versionText);
  return m ? m[1]!.trim().split(/\s+/) : [];
}

/** Before connecting: rsync and OpenSSH's ssh on this host (exit 2 naming the package). */
export async function checkLocalRsync(): Promise<LocalRsync> {
  const rsync = findOnPath('rsync');
  if (!rsync) {
    throw new UsageError('NO_LOCAL_RSYNC', 'rsync is not installed on this host (--engine rsync needs it): install the rsync package (Debian/Ubuntu: apt-get install rsync), or use --engine native');
  }
  const ssh = findOnPath('ssh');
  if (!ssh) {
    throw new UsageError('NO_LOCAL_SSH', 'the OpenSSH client (ssh) is not installed on this host (--engine rsync needs it): install the openssh-client package, or use --engine native');
  }
  const v = await runProcess(rsync, ['--version']);
  if (v.code !== 0) throw new UsageError('NO_LOCAL_RSYNC', `${rsync} --version failed: ${lastLineOf(v.stderr) || `exit ${v.code}`}`);
  return { rsync, ssh, compressors: compressorsOf(v.stdout) };
}

/** `Total bytes sent: 1,234` from rsync --stats (digit separators depend on the version). */
export function wireBytesOf(stats: string): number | undefined {
  const m = /^Total bytes sent:\s*([\d,.]+)/m.exec(stats);
  if (!m) return undefined;
  const n = Number(m[1]!.replace(/[,.]/g, ''));
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Before a job continues (with either engine): remove the local staging dir (staged blocks) and
 * socket dir that a killed rsync run of this job left. Its ControlMaster ends by itself.
 */
export async function removeRsyncLeftovers(jobId: string, localDir: string | undefined): Promise<void> {
  await removeLeftovers(resolve(localDir ?? tmpdir()), stagingPrefix(jobId));
  await removeLeftovers(muxDirBase(), muxDirPrefix(jobId));
}

/** A counting semaphore whose limit can shrink (the server refused a session). */
class Slots {
  private active = 0;
  private readonly queue = new WaitLine<void>();
  constructor(public limit: number) {}

  async acquire(signal: AbortSignal): Promise<void> {
    while (this.active >= this.limit) {
      signal.throwIfAborted();
      await this.queue.wait(signal);
    }
    this.active++;
  }

  release(): void {
    this.active--;
    this.queue.wakeOne();
  }

  get inUse(): number {
    return this.active;
  }
}

export interface RsyncSessionOptions {
  target: string;
  /** The largest block (staging space needed for one). */
  largestBlock: number;
  /** `--local-dir` [system temp dir]. */
  localDir?: string;
  /** `--remote-dir`: a per-job staging dir inside it, as with `--via sftp` [the helper's work dir]. */
  remoteDir?: string;
  /** `--remote-reserve` as typed [smaller of 1 GiB and 10 % of the remote filesystem]. */
  remoteReserve?: string;
  compress: CompressMode;
  /** Channels per connection: rsync sessions at once on the ControlMaster connection. */
  channels: number;
  jobId: string;
  reconnectTimeoutMs: number;
  signal: AbortSignal;
  onWarning(msg: string): void;
}

export class RsyncSession {
  /** Concurrent rsync processes (sessions on the master connection). */
  private readonly rsyncSlots: Slots;
  /** Blocks on the remote staging dir at once (rsync'd, not yet written by the helper). */
  readonly remoteSlots: Slots;
  private warnedRefusal = false;
  private remoteDirReady = false;

  private constructor(
    private readonly local: LocalRsync,
    private readonly pool: SshPool,
    readonly mux: OpenSshMux,
    readonly staging: LocalStaging,
    /** Where block files land on the remote host. */
    readonly remoteDir: string,
    /** What the journal keeps for a later run: `--remote-dir` resolved, `--local-dir`. */
    readonly recorded: Record<string, unknown>,
    private readonly compress: string[],
    channels: number,
    remoteBlocks: number,
    private readonly onWarning: (msg: string) => void,
    private readonly remoteFree: number,
    private readonly remoteReserve: number,
  ) {
    this.rsyncSlots = new Slots(Math.max(1, channels));
    this.remoteSlots = new Slots(Math.max(1, remoteBlocks));
  }

  /**
   * Setup after the remote probe and before anything is written: remote rsync (exit 2 naming
   * the package), remote and local staging space (exit 2 if one block does not fit), then the
   * ControlMaster connection (exit 3 on host key or auth).
   */
  static async open(local: LocalRsync, s: { pool: SshPool; helper: RemoteHelper; endpoint: Endpoint }, o: RsyncSessionOptions): Promise<RsyncSession> {
    const host = s.endpoint.hosts[0]!;
    const remoteVersion = await runRemote(s.pool, shCommand('sh', '-c', 'command -v rsync >/dev/null 2>&1 || exit 127; exec rsync --version'), { signal: o.signal });
    if (remoteVersion.code === 127) {
      throw new UsageError('NO_REMOTE_RSYNC', `rsync is not installed on ${host} (--engine rsync needs it there too): install the rsync package on ${host} (Debian/Ubuntu: apt-get install rsync), or use --engine native`);
    }
    if (remoteVersion.code !== 0) {
      throw new RemoteHelperError('REMOTE_RSYNC', `rsync --version failed on ${host}: ${lastLine(remoteVersion.stderr) || `exit ${remoteVersion.code}`}`);
    }
    const compress = rsyncCompression(o.compress, local.compressors, compressorsOf(remoteVersion.stdout));

    const probe = await s.helper.probe(o.target, o.remoteDir ?? s.helper.workDir, o.signal);
    if (o.remoteDir !== undefined && (!probe.dir || !probe.dirWritable)) {
      throw new UsageError('REMOTE_DIR', `--remote-dir ${o.remoteDir} ${probe.dir ? 'is not writable by the remote user' : 'does not exist on the remote host'}: create it or choose another`);
    }
    const remoteDir = o.remoteDir === undefined ? s.helper.workDir : stagingDirOf(probe.dir!, o.jobId);
    const reserve = resolveReserve(o.remoteReserve, probe.dirSize ?? 0);
    const remoteBlocks = Math.floor((probe.free - reserve) / o.largestBlock);
    if (remoteBlocks < 1) {
      throw new UsageError(
        'REMOTE_DIR_FULL',
        `remote staging dir ${host}:${remoteDir} has ${formatBytes(probe.free)} free; a block needs ${formatBytes(o.largestBlock)} plus ${formatBytes(reserve)} kept free: free space there, pick another --remote-dir, or use a smaller --block-size`,
      );
    }
    const recorded: Record<string, unknown> = {};
    if (o.localDir !== undefined) recorded.localDir = o.localDir;
    if (o.remoteDir !== undefined) Object.assign(recorded, { remoteDir: probe.dir, remoteReserve: o.remoteReserve });
    const staging = await LocalStaging.open(o.localDir, o.largestBlock, o.jobId);
    let mux: OpenSshMux;
    try {
      mux = await OpenSshMux.start(s.endpoint, { reconnectTimeoutMs: o.reconnectTimeoutMs, jobId: o.jobId, onWarning: o.onWarning, ssh: local.ssh });
    } catch (err) {
      await staging.close();
      throw err;
    }
    return new RsyncSession(local, s.pool, mux, staging, remoteDir, recorded, compress, o.channels, remoteBlocks, o.onWarning, probe.free, reserve);
  }

  /** One line for `--dry-run`. */
  describe(): string {
    const z = this.compress.length ? this.compress.join(' ') : 'no compression';
    return `engine rsync: blocks staged in ${this.staging.dir}, rsync'd (${z}, up to ${this.rsyncSlots.limit} at a time over one OpenSSH connection) into ${this.remoteDir} (${formatBytes(this.remoteFree)} free there, ${formatBytes(this.remoteReserve)} kept free)`;
  }

  /** Where a block's staged file goes on the remote host (the `--via sftp` name: one cleanup). */
  remoteFileFor(index: number): string {
    return `${this.remoteDir}/block-${index}`;
  }

  /** Create the per-job dir in `--remote-dir` (mode 700) once, when the first block needs it. */
  async ensureRemoteDir(signal: AbortSignal): Promise<void> {
    if (this.remoteDirReady) return;
    const r = await runRemote(this.pool, shCommand('sh', '-c', 'umask 077 && mkdir -p -- "$1" && chmod 700 -- "$1"', 'ddt-mkdir', this.remoteDir), { signal });
    if (r.code !== 0) throw new RemoteHelperError('REMOTE_DIR', `cannot create the staging dir ${this.remoteDir}: ${lastLine(r.stderr) || `exit ${r.code}`}`);
    this.remoteDirReady = true;
  }

  /**
   * rsync `local` to `remote` over the ControlMaster. A master lost meanwhile is brought back
   * (ensure: backoff, reconnect timeout) and the file sent again; a session the server refuses
   * (OpenSSH MaxSessions) lowers the number of concurrent rsyncs and waits for a free one.
   */
  async send(local: string, remote: string, length: number, signal: AbortSignal): Promise<number> {
    let losses = 0;
    let refusals = 0;
    for (;;) {
      await this.rsyncSlots.acquire(signal);
      let r;
      try {
        await this.mux.ensure(signal);
        r = await runProcess(this.local.rsync, this.rsyncArgs(local, remote), { signal, env: { ...process.env, LC_ALL: 'C' } });
      } finally {
        this.rsyncSlots.release();
      }
      if (r.code === 0) return this.compress.length ? (wireBytesOf(r.stdout) ?? length) : length;
      const why = lastLineOf(r.stderr.split('\n').filter((l) => !/^rsync error:/.test(l)).join('\n')) || lastLineOf(r.stderr) || `exit ${r.code ?? r.signal}`;
      if (/session open refused|open failed|administratively prohibited/i.test(r.stderr) && ++refusals <= MAX_REFUSALS) {
        const limit = Math.max(1, this.rsyncSlots.inUse);
        await new Promise((r) => setTimeout(r, 100 * refusals)); // a closing session frees its slot soon
        if (limit < this.rsyncSlots.limit) {
          this.rsyncSlots.limit = limit;
          if (!this.warnedRefusal) {
            this.warnedRefusal = true;
            this.onWarning(`the server refused an SSH session for rsync (OpenSSH MaxSessions?): running ${limit} rsync(s) at a time`);
          }
        }
        continue;
      }
      if (!(await this.mux.check()) && ++losses <= MAX_MASTER_LOSSES) continue;
      throw new DdtError('RSYNC_FAILED', ExitCode.incomplete, `rsync of ${local} failed (exit ${r.code ?? r.signal}): ${why}`);
    }
  }

  async close(): Promise<void> {
    await this.mux.stop();
    await this.staging.close();
  }

  private rsyncArgs(local: string, remote: string): string[] {
    return [
      // -s: the remote path travels inside the protocol, never through the remote shell.
      '-s',
      // whole file, written in place: no delta search, no temp copy on the remote side (a
      // short file from an interrupted transfer is refused by the helper's size check).
      '-W',
      '--inplace',
      // with compression, --stats tells the bytes that went on the wire
      ...(this.compress.length ? [...this.compress, '--stats'] : []),
      '-e', this.mux.rsyncShell,
      '--',
      local,
      `${MUX_HOST}:${remote}`,
    ];
  }
}
