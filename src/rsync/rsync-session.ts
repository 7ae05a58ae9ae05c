/**
 * The rsync data path's run-wide parts (the original dd-transfer script's path): local and remote
 * rsync checked before anything is written, the local staging dir, the remote staging dir's
 * space, and the one OpenSSH ControlMaster connection every rsync shares.
 */
import PQueue from 'p-queue';
import { DdtError } from '../errors.js';
import { formatBytes } from '../format.js';
import type { RemoteHelper } from '../remote/helper.js';
import { shCommand } from '../remote/quote.js';
import { howEnded, lastLine, runRemote } from '../remote/run.js';
import { stagingDirOf } from '../remote/sftp-target.js';
import { planStaging, StagingSpace } from '../remote/staging-space.js';
import type { Endpoint } from '../transport/endpoint.js';
import { findOnPath, lastLineOf, runProcess } from '../transport/local-process.js';
import { MuxSessions } from '../transport/mux-sessions.js';
import { MUX_HOST, OpenSshMux } from '../transport/openssh-mux.js';
import { LocalStaging } from './local-staging.js';

export type RsyncCompress = 'none' | 'gzip' | 'auto';

/**
 * rsync compressors for `--compress auto`: they cost next to nothing (on loopback a 512 MiB mixed
 * image took 1.1–1.4 s with zstd, 1.4–2.2 s with lz4, 1.6–2.8 s without -z, but 16 s with zlib,
 * the only one before rsync 3.2). So `-z` only when both ends have one of these.
 */
const FAST_COMPRESSORS = ['zstd', 'lz4'];

/** rsync arguments for `--compress` given both ends' `Compress list:` (empty: rsync < 3.2). */
export function rsyncCompression(mode: RsyncCompress, local: string[], remote: string[]): string[] {
  if (mode === 'none') return [];
  if (mode === 'auto') {
    const fast = FAST_COMPRESSORS.find((c) => local.includes(c) && remote.includes(c));
    return fast ? ['-z', `--compress-choice=${fast}`] : [];
  }
  // gzip: zlib (deflate), what the original script's --compress used.
  return local.includes('zlib') && remote.includes('zlib') ? ['-z', '--compress-choice=zlib'] : ['-z'];
}

/** A master lost this many times during one block's rsync: give the block back to the pipeline. */
const MAX_MASTER_LOSSES = 5;

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
  if (!rsync) throw new DdtError('TOOL_MISSING', 'rsync is not installed on this host (--engine rsync needs it): install the rsync package (Debian/Ubuntu: apt-get install rsync), or use --engine native');
  const ssh = findOnPath('ssh');
  if (!ssh) throw new DdtError('TOOL_MISSING', 'the OpenSSH client (ssh) is not installed on this host (--engine rsync needs it): install the openssh-client package, or use --engine native');
  const v = await runProcess(rsync, ['--version']);
  if (v.code !== 0) throw new DdtError('TOOL_MISSING', `${rsync} --version failed: ${lastLineOf(v.stderr) || `exit ${v.code}`}`);
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
 * A stdout listener for `rsync --progress`, which redraws a line like
 * `  11,567,104  36%   10.00MB/s    0:00:01` with `\r` about once a second: `onBytes` hears the
 * file's bytes rsync has sent since the last call. Never more than the file: an rsync started
 * again (its master was lost) counts from 0 and says nothing new until it passes the old mark.
 */
export function progressListener(onBytes: (bytes: number) => void): (text: string) => void {
  let partial = '';
  let reported = 0;
  return (text) => {
    const pieces = (partial + text).split(/[\r\n]/);
    partial = pieces.pop() ?? '';
    for (const piece of pieces) {
      const m = /^\s*([\d,.]+)\s+\d+%/.exec(piece);
      const n = m ? Number(m[1]!.replace(/[,.]/g, '')) : NaN;
      if (Number.isSafeInteger(n) && n > reported) {
        onBytes(n - reported);
        reported = n;
      }
    }
  };
}

/** What `send` tells as the file goes: block bytes rsync sent, and its bytes on the wire. */
export interface RsyncHearing {
  onAck?: (bytes: number) => void;
  onWire?: (bytes: number) => void;
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
  compress: RsyncCompress;
  /** rsync sessions at once on the ControlMaster connection. */
  channels: number;
  jobId: string;
  reconnectTimeoutMs: number;
  signal: AbortSignal;
  onWarning(msg: string): void;
}

export class RsyncSession {
  private remoteDirReady = false;

  private constructor(
    private readonly local: LocalRsync,
    private readonly helper: RemoteHelper,
    private readonly sessions: MuxSessions,
    readonly staging: LocalStaging,
    /** Where block files land on the remote host. */
    readonly remoteDir: string,
    private readonly compress: string[],
    /** Blocks on the remote staging dir at once (rsync'd, not yet written by the helper). */
    readonly remoteSlots: PQueue,
    private readonly remoteFree: number,
    private readonly remoteReserve: number,
  ) {}

  /**
   * Setup after the remote probe and before anything is written: remote rsync (exit 2 naming
   * the package), remote and local staging space (exit 2 if one block does not fit), then the
   * ControlMaster connection (exit 3 on host key or auth).
   */
  static async open(local: LocalRsync, helper: RemoteHelper, endpoint: Endpoint, o: RsyncSessionOptions): Promise<RsyncSession> {
    const host = endpoint.hosts[0]!;
    const remoteVersion = await runRemote(helper.control, shCommand('sh', '-c', 'command -v rsync >/dev/null 2>&1 || exit 127; exec rsync --version'), { signal: o.signal });
    if (remoteVersion.code === 127) {
      throw new DdtError('TOOL_MISSING', `rsync is not installed on ${host} (--engine rsync needs it there too): install the rsync package on ${host} (Debian/Ubuntu: apt-get install rsync), or use --engine native`);
    }
    if (remoteVersion.code !== 0) throw new DdtError('REMOTE_COMMAND', `rsync --version failed on ${host}: ${lastLine(remoteVersion.stderr) || howEnded(remoteVersion)}`);
    const compress = rsyncCompression(o.compress, local.compressors, compressorsOf(remoteVersion.stdout));

    const probe = await helper.probe(o.target, o.remoteDir ?? helper.workDir, o.signal);
    const plan = planStaging(probe, o.remoteDir ?? 'the work dir', o.remoteReserve, o.largestBlock);
    const remoteDir = o.remoteDir === undefined ? helper.workDir : stagingDirOf(plan.dir, o.jobId);
    const space = new StagingSpace({ reserve: plan.reserve });
    const remoteBlocks = Math.max(1, Math.floor((plan.free - plan.reserve) / space.need(o.largestBlock)));
    const staging = await LocalStaging.open(o.localDir, o.largestBlock, o.jobId);
    let mux: OpenSshMux;
    try {
      mux = await OpenSshMux.start(endpoint, { reconnectTimeoutMs: o.reconnectTimeoutMs, jobId: o.jobId, onWarning: o.onWarning, ssh: local.ssh, signal: o.signal });
    } catch (err) {
      await staging.close();
      throw err;
    }
    const sessions = new MuxSessions([mux], o.channels, 0, (m) => o.onWarning(`${m} for rsync`));
    return new RsyncSession(local, helper, sessions, staging, remoteDir, compress, new PQueue({ concurrency: remoteBlocks }), plan.free, plan.reserve);
  }

  /** One line for `--dry-run`. */
  describe(): string {
    const z = this.compress.length ? this.compress.join(' ') : 'no compression';
    return `engine rsync: blocks staged in ${this.staging.dir}, rsync'd (${z}, up to ${this.sessions.capacity()} at a time over one OpenSSH connection) into ${this.remoteDir} (${formatBytes(this.remoteFree)} free there, ${formatBytes(this.remoteReserve)} kept free)`;
  }

  /** Where a block's staged file goes on the remote host (the `--via sftp` name: one cleanup). */
  remoteFileFor(index: number): string {
    return `${this.remoteDir}/block-${index}`;
  }

  /** Create the per-job dir in `--remote-dir` (mode 700) once, when the first block needs it. */
  async ensureRemoteDir(signal: AbortSignal): Promise<void> {
    if (this.remoteDirReady) return;
    const r = await runRemote(this.helper.control, shCommand('sh', '-c', 'umask 077 && mkdir -p -- "$1" && chmod 700 -- "$1"', 'ddt-mkdir', this.remoteDir), { signal });
    if (r.code !== 0) throw new DdtError('REMOTE_COMMAND', `cannot create the staging dir ${this.remoteDir}: ${lastLine(r.stderr) || howEnded(r)}`);
    this.remoteDirReady = true;
  }

  /**
   * rsync `local` to `remote` over the ControlMaster. A master lost meanwhile is brought back
   * (ensure: backoff, reconnect timeout) and the file sent again; a session the server refuses
   * (OpenSSH MaxSessions) teaches the master's session budget and waits for a free one.
   * `hear` is told the file's bytes as rsync sends them, and its bytes on the wire.
   */
  async send(local: string, remote: string, length: number, signal: AbortSignal, hear: RsyncHearing = {}): Promise<void> {
    // Uncompressed, the file's bytes are the wire's; compressed, only --stats at the end knows.
    let live = 0;
    const onStdout = progressListener((n) => {
      hear.onAck?.(n);
      if (!this.compress.length) hear.onWire?.(n);
      live += n;
    });
    for (let losses = 0; ; ) {
      const r = await this.sessions.withSlot(signal, async (mux) => {
        const r = await runProcess(this.local.rsync, this.rsyncArgs(mux, local, remote), { signal, env: { ...process.env, LC_ALL: 'C' }, onStdout });
        return r.code !== 0 && /session open refused|open failed|administratively prohibited/i.test(r.stderr) ? 'refused' : r;
      });
      if (r.code === 0) {
        hear.onWire?.(this.compress.length ? (wireBytesOf(r.stdout) ?? length) : length - live);
        return;
      }
      if (!(await this.sessions.muxes[0]!.check()) && ++losses <= MAX_MASTER_LOSSES) continue;
      const why = lastLineOf(r.stderr.split('\n').filter((l) => !/^rsync error:/.test(l)).join('\n')) || lastLineOf(r.stderr) || `exit ${r.code ?? r.signal}`;
      throw new DdtError('RSYNC_FAILED', `rsync of ${local} failed (exit ${r.code ?? r.signal}): ${why}`);
    }
  }

  async close(): Promise<void> {
    await this.sessions.stop();
    await this.staging.close();
  }

  private rsyncArgs(mux: OpenSshMux, local: string, remote: string): string[] {
    return [
      // -s: the remote path travels inside the protocol, never through the remote shell.
      '-s',
      // whole file, written in place: no delta search, no temp copy on the remote side (a
      // short file from an interrupted transfer is refused by the helper's size check).
      '-W',
      '--inplace',
      // with compression, --stats tells the bytes that went on the wire
      ...(this.compress.length ? [...this.compress, '--stats'] : []),
      // the file's bytes as they go, about once a second: progress within a block
      '--progress',
      '-e',
      mux.rsyncShell,
      '--',
      local,
      `${MUX_HOST}:${remote}`,
    ];
  }
}
