/**
 * Blocks staged over SFTP: a data block is uploaded through one of several long-lived SFTP
 * sessions into a file in a per-job staging directory, with many WRITE requests in flight; then
 * a helper worker `dd`s that file onto the target at the block's offset, reads the range back,
 * hashes it and deletes the file (`F` request). Uploads and remote writes use separate
 * channels, so while some blocks are still arriving, arrived ones are being written. Zero blocks,
 * hashing and a re-sync's deltas (the few units of a block that differ, as parts) go straight to
 * the workers: staging a delta would need a file per part, and a round trip per file, for bytes
 * that are few by their nature.
 *
 * A block is staged only when the staging filesystem has room for it, every other staged or
 * in-flight block, and the reserve (`SpaceGate`); free space is measured with statvfs on an
 * SFTP session (no extra channel), at most every few seconds, more often while blocks wait.
 *
 * The hot path keeps raw ssh2 SFTP handles (many positioned WRITEs in flight on one session);
 * ssh2-sftp-client's put/fastPut stream a whole file and cannot write at an offset of a
 * staging file we continue, so it serves the housekeeping only (sftp-housekeeping.ts: listing
 * and removing staging dirs).
 */
import type { BlockPayload, BlockDigest, BlockRef, BlockSink, UnitSpec } from '../block/types.js';
import { countingZeros } from '../block/zero.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { LivePool } from '../pool/live-pool.js';
import type { SshPool } from '../transport/ssh-pool.js';
import { shCommand, validateRemotePath } from './quote.js';
import { runRemote } from './run.js';
import type { RemoteTarget } from './remote-target.js';
import { SftpHousekeeping, STAGED_BLOCK, STAGING_PREFIX } from './sftp-housekeeping.js';
import { SpaceGate } from './space-gate.js';
import { SftpSession, SftpStatusError, uploadBlock } from './sftp-upload.js';
import { StagingSpace, stagingSpaceMessage, type SpaceLease } from './staging-space.js';

/** WRITE requests in flight per session: 16 × 255 KiB keeps a 2 MiB channel window full. */
const WRITES_IN_FLIGHT = 16;

/** The per-job staging directory inside a remote dir. */
export function stagingDirOf(remoteDir: string, jobId: string): string {
  return `${remoteDir.replace(/\/+$/, '')}/${STAGING_PREFIX}${jobId}`;
}

// $1: the staging dir. The same as SftpHousekeeping.removeStaging, for a host whose sshd has no
// SFTP subsystem (the rsync engine stages without one).
const REMOVE_STAGING = '[ -d "$1" ] && [ ! -L "$1" ] || exit 0; rm -f -- "$1"/block-*; rmdir -- "$1"';

/**
 * Remove a job's staging dir (absolute, as the probe resolved it) after every block was proven:
 * its block files, then the dir if nothing else is in it. Best effort: it only holds data ddt wrote.
 */
export async function removeStagingDir(control: SshPool, stagingDir: string, signal?: AbortSignal): Promise<void> {
  const sftp = await SftpHousekeeping.open(control, signal).catch(() => undefined);
  if (!sftp) {
    await runRemote(control, shCommand('sh', '-c', REMOVE_STAGING, 'ddt-staging', validateRemotePath(stagingDir, 'staging dir')), { signal }).catch(() => undefined);
    return;
  }
  try {
    await sftp.removeStaging(stagingDir, signal);
  } catch {
    // best effort
  } finally {
    await sftp.close().catch(() => undefined);
  }
}

export interface SftpStagingOptions {
  /** Absolute; created (mode 700) if missing, continued if there (resume). */
  stagingDir: string;
  /** Channels for SFTP sessions and helper workers together (the server may allow fewer). */
  sessions: number;
  /** Bytes to leave free on the staging filesystem. */
  reserve: number;
  /** The largest block: "not even one fits" is refused before anything is written. */
  blockLength: number;
  /** Available bytes the probe saw, for servers without the statvfs extension. */
  probedFree: number;
  signal: AbortSignal;
  onWarning?: (message: string) => void;
}

export class SftpStagingSink implements BlockSink {
  private gate: SpaceGate | undefined;
  /** Blocks whose next upload must start afresh (a failed WRITE may have left a hole). */
  private readonly restart = new Set<number>();

  private constructor(
    /** The helper workers that write staged files onto the target. */
    private readonly writers: RemoteTarget,
    private readonly sessions: LivePool<SftpSession>,
    readonly stagingDir: string,
  ) {}

  /**
   * One SFTP session first, then the helper workers (`openWriters`), then more sessions in the
   * slots left: a server that allows fewer channels than asked (MaxSessions) still gets both kinds.
   */
  static async open(pool: SshPool, openWriters: () => Promise<RemoteTarget>, o: SftpStagingOptions): Promise<SftpStagingSink> {
    validateRemotePath(o.stagingDir, 'staging dir');
    let count = 0;
    const sessions = await LivePool.start<SftpSession>(
      1,
      {
        spawn: async (signal, wait) => new SftpSession(await pool.sftp({ signal, wait }), `sftp ${++count}`, (s) => pool.release(s)),
        capacity: () => pool.capacity(),
        closedError: () => new DdtError('CLOSED', `SFTP sessions for ${o.stagingDir} are closed`),
      },
      o.signal,
    ).catch((err: unknown) => {
      throw new DdtError('PATH_REFUSED', `no SFTP session on the remote host (${(err as Error).message}): is its sftp subsystem enabled? Or use --via stream`, { cause: err });
    });
    let writers: RemoteTarget | undefined;
    try {
      writers = await openWriters();
      await sessions.grow(Math.max(0, Math.min(o.sessions, pool.capacity()) - writers.capacity - 1), o.signal);
    } catch (err) {
      await Promise.all([sessions.close(), writers?.close()]).catch(() => undefined);
      throw err;
    }
    const sink = new SftpStagingSink(writers, sessions, o.stagingDir);
    try {
      await sink.prepare(o);
      return sink;
    } catch (err) {
      await sink.close().catch(() => undefined);
      throw err;
    }
  }

  /** A delta goes to the workers as parts, as on the exec-channel path. */
  get takesDelta(): boolean | undefined {
    return this.writers.takesDelta;
  }

  /** Blocks in flight: uploading on every session while the workers write arrived ones. */
  get capacity(): number {
    return this.sessions.size + this.writers.capacity;
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (payload.kind !== 'data') return this.writers.writeAt(block, payload, algo, signal);
    const gate = this.gate!;
    const name = `block-${block.index}`;
    const file = `${this.stagingDir}/${name}`;
    let lease: SpaceLease | undefined;
    let gone = false;
    const zero = { bytes: 0 };
    try {
      lease = await gate.acquire(name, block.length, signal);
      const held = lease;
      await this.sessions.use(signal, async (s) => {
        try {
          await uploadBlock(s, file, countingZeros(payload.chunks, zero), block.length, {
            resume: !this.restart.has(block.index),
            inFlight: WRITES_IN_FLIGHT,
            signal,
            onWire: payload.onWire,
            onOpened: (existing) => {
              gate.space.truncated(held);
              gate.space.ack(held, existing);
              payload.onAck?.(existing);
            },
            onAcked: (bytes) => {
              gate.space.ack(held, bytes);
              payload.onAck?.(bytes);
            },
            onHole: payload.onAck,
          });
          this.restart.delete(block.index);
        } catch (err) {
          if (err instanceof SftpStatusError) this.restart.add(block.index);
          throw err;
        }
      });
      gate.space.handOver(lease);
      const sum = await this.writers.writeStaged(block, file, algo, signal, { bytes: () => zero.bytes, onZeroed: payload.onZeroed });
      gone = true; // the helper deletes the file once it is written
      return sum;
    } finally {
      if (lease) {
        if (gone) gate.release(lease);
        else gate.abandon(lease); // its file may remain: a retry or resume continues it
      }
      // Let the source release its buffers if the payload was not consumed (no-op otherwise).
      if (!gone) void payload.chunks[Symbol.asyncIterator]().return?.()?.catch(() => undefined);
    }
  }

  hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.writers.hashAt(block, algo, signal);
  }

  hashStream(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): AsyncIterable<BlockDigest> {
    return this.writers.hashStream(blocks, algo, signal, units);
  }

  get unitAlgo(): ChecksumAlgo | undefined {
    return this.writers.unitAlgo;
  }

  /** Let blocks in flight finish, then close sessions and workers. Idempotent. */
  async close(): Promise<void> {
    await this.sessions.close();
    this.gate?.close();
    await this.writers.close();
  }

  async abort(): Promise<void> {
    this.gate?.close();
    this.sessions.abort();
    await this.writers.abort();
  }

  // ---------------------------------------------------------------------------------------

  /** Staging dir (created or continued), leftover block files, space: refuse if no block fits. */
  private async prepare(o: SftpStagingOptions): Promise<void> {
    const s = this.sessions.any()!;
    let st = await s.lstat(o.stagingDir);
    let created = false;
    if (!st) {
      await s.call<void>(`mkdir ${o.stagingDir}`, (cb) => s.sftp.mkdir(o.stagingDir, { mode: 0o700 }, cb));
      created = true;
      st = await s.lstat(o.stagingDir);
    }
    if (!st?.isDirectory()) throw new DdtError('BAD_PATH', `staging dir ${o.stagingDir} on the remote host is not a directory`);
    if ((st.mode & 0o077) !== 0) {
      // Only this user may read blocks of the disk or swap files under the helper.
      await s.call<void>(`chmod ${o.stagingDir}`, (cb) => s.sftp.chmod(o.stagingDir, 0o700, cb));
    }
    const leftovers = created ? [] : await s.call<Array<{ filename: string; attrs: { size: number; isFile(): boolean } }>>(`readdir ${o.stagingDir}`, (cb) => s.sftp.readdir(o.stagingDir, cb));

    let measure: (() => Promise<number>) | undefined = () => this.measure();
    let unit = 4096;
    let available = o.probedFree;
    try {
      const fs = await s.statvfs(o.stagingDir);
      unit = fs.unit;
      available = fs.available;
    } catch (err) {
      if (!s.alive) throw err;
      measure = undefined; // no statvfs@openssh.com: count from the probe's figure
      o.onWarning?.(`the SFTP server cannot report free space (${(err as Error).message}): staging space is accounted from the figure measured at start`);
    }
    const space = new StagingSpace({ reserve: o.reserve, unit });
    for (const f of leftovers) if (STAGED_BLOCK.test(f.filename) && f.attrs.isFile()) space.addOrphan(f.filename, f.attrs.size);
    space.onMeasured(space.snapshot(), available);
    this.gate = new SpaceGate(space, { measure, onStuck: (m) => o.onWarning?.(`${m} in ${o.stagingDir}`) });

    if (space.free - space.reserve < space.need(o.blockLength)) {
      if (created) await s.call<void>(`rmdir ${o.stagingDir}`, (cb) => s.sftp.rmdir(o.stagingDir, cb)).catch(() => undefined);
      throw new DdtError('STAGING_SPACE', stagingSpaceMessage(o.stagingDir, space, o.blockLength));
    }
  }

  private async measure(): Promise<number> {
    const s = this.sessions.any();
    if (!s) throw new Error('no SFTP session to measure free space');
    return (await s.statvfs(this.stagingDir)).available;
  }
}
