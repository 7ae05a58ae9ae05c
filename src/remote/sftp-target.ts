/**
 * `--via sftp` (DESIGN §2, issue #4): a data block is uploaded through one of several long-lived
 * SFTP sessions into a file in a per-job staging directory, with many WRITE requests in flight;
 * then a helper worker `dd`s that file onto the target at the block's offset, reads the range
 * back, hashes it and deletes the file (`F` request). Uploads and remote writes use separate
 * channels, so while some blocks are still arriving, arrived ones are being written; remote
 * writers follow the remote core count. Zero blocks and hashing go straight to the workers.
 *
 * A block is staged only when the staging filesystem has room for it, every other staged or
 * in-flight block, and the reserve (`SpaceGate`); free space is measured with statvfs on an
 * SFTP session (no extra channel), at most every few seconds, more often while blocks wait.
 */
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockPayload, BlockRef, TargetHasher, TargetWriter } from '../engine/types.js';
import { WaitLine } from '../abort.js';
import { SshError, UsageError } from '../errors.js';
import { formatBytes } from '../progress/format.js';
import type { TokenBucket } from '../transport/bwlimit.js';
import type { SshPool } from '../transport/ssh-pool.js';
import type { RemoteHelper } from './helper.js';
import { validateRemotePath } from './quote.js';
import { RemoteTargetWriter } from './remote-target.js';
import { SftpSession, SftpStatusError, uploadBlock } from './sftp-upload.js';
import { SpaceGate, StagingSpace, type SpaceLease } from './staging-space.js';

/** WRITE requests in flight per session: 16 × 255 KiB keeps a 2 MiB channel window full. */
const WRITES_IN_FLIGHT = 16;
const BLOCK_FILE = /^block-(\d+)$/;

/** The per-job staging directory inside `--remote-dir`. */
export function stagingDirOf(remoteDir: string, jobId: string): string {
  return `${remoteDir.replace(/\/+$/, '')}/.ddt-staging-${jobId}`;
}

export interface SftpStagingOptions {
  target: string;
  /** Absolute; created (mode 700) if missing, continued if there (resume). */
  stagingDir: string;
  /** Channels this writer may use in all: SFTP sessions plus helper workers. */
  channels: number;
  /** Remote cores: how many helper workers write staged files onto the target at once. */
  cores: number;
  /** Bytes to leave free on the staging filesystem. */
  reserve: number;
  /** The largest block: "not even one fits" is refused before anything is written. */
  blockLength: number;
  /** Available bytes the probe saw, for servers without the statvfs extension. */
  probedFree: number;
  /** `--bwlimit`: one bucket for the run. */
  bucket?: TokenBucket;
  signal: AbortSignal;
  onWarning?: (message: string) => void;
}

export class SftpStagingWriter implements TargetWriter, TargetHasher {
  private gate: SpaceGate | undefined;
  private bucket: TokenBucket | undefined;
  /** Blocks whose next upload must start afresh (a failed WRITE may have left a hole). */
  private readonly restart = new Set<number>();
  private inFlight = 0;
  private drained: Array<() => void> = [];
  private closed = false;

  private constructor(
    private readonly helpers: RemoteTargetWriter,
    private readonly sessions: SessionSet,
    readonly stagingDir: string,
  ) {}

  static async open(helper: RemoteHelper, o: SftpStagingOptions): Promise<SftpStagingWriter> {
    validateRemotePath(o.stagingDir, 'staging dir');
    const cap = Math.min(o.channels, helper.pool.capacity());
    if (cap < 2) {
      throw new UsageError('SFTP_CHANNELS', `--via sftp needs at least 2 channels (an SFTP session and a helper worker), this run has ${cap}: raise --channels or use --via stream`);
    }
    // One SFTP session first, then the workers, then more sessions in the slots left: a server
    // that allows fewer channels than asked for (MaxSessions) still gets both kinds.
    const sessions = new SessionSet(helper.pool);
    let helpers: RemoteTargetWriter | undefined;
    try {
      await sessions.start(1, o.signal);
      const workers = Math.max(1, Math.min(o.cores, cap - 1, Math.floor(cap / 2)));
      helpers = await RemoteTargetWriter.open(helper, o.target, { workers, signal: o.signal }).catch((err: unknown) => {
        if (!(err instanceof SshError) || err.code !== 'SSH_NO_CHANNEL') throw err;
        throw new UsageError('SFTP_CHANNELS', `--via sftp needs 2 channels (an SFTP session and a helper worker), the server allows only 1: use --via stream`, { cause: err });
      });
      await sessions.start(Math.max(0, Math.min(cap, helper.pool.capacity()) - helpers.workers - 1), o.signal);
    } catch (err) {
      await Promise.all([sessions.close(), helpers?.close()]).catch(() => undefined);
      throw err;
    }
    const w = new SftpStagingWriter(helpers, sessions, o.stagingDir);
    w.bucket = o.bucket;
    try {
      await w.prepare(o);
      return w;
    } catch (err) {
      await w.close().catch(() => undefined);
      throw err;
    }
  }

  /** Blocks in flight: uploading on every session while the workers write arrived ones. */
  get workers(): number {
    return this.sessions.size + this.helpers.workers;
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (payload.kind === 'zero') return this.helpers.writeAt(block, payload, algo, signal);
    if (this.closed) throw new SshError('TARGET_CLOSED', `staging writer for ${this.stagingDir} is closed`);
    this.inFlight++;
    try {
      return await this.stageAndWrite(block, payload, algo, signal);
    } finally {
      if (--this.inFlight === 0) for (const r of this.drained.splice(0)) r();
    }
  }

  async hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.helpers.hashAt(block, algo, signal);
  }

  hashStream(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal): AsyncIterable<{ block: BlockRef; checksum: string }> {
    return this.helpers.hashStream(blocks, algo, signal);
  }

  /** Let blocks in flight finish, then close sessions and workers. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.inFlight > 0) await new Promise<void>((r) => this.drained.push(r));
    this.gate?.close();
    await Promise.all([this.sessions.close(), this.helpers.close()]);
  }

  async abort(): Promise<void> {
    this.closed = true;
    this.gate?.close();
    this.sessions.destroy();
    await this.helpers.abort();
  }

  // ---------------------------------------------------------------------------------------

  private async stageAndWrite(block: BlockRef, payload: Extract<BlockPayload, { kind: 'data' }>, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    const gate = this.gate!;
    const name = `block-${block.index}`;
    const file = `${this.stagingDir}/${name}`;
    let lease: SpaceLease | undefined;
    let gone = false;
    try {
      lease = await gate.acquire(name, block.length, signal);
      const held = lease;
      const s = await this.sessions.acquire(signal);
      try {
        const sent = await uploadBlock(s, file, payload.chunks, block.length, {
          resume: !this.restart.has(block.index),
          inFlight: WRITES_IN_FLIGHT,
          signal,
          bucket: this.bucket,
          onOpened: (existing) => {
            gate.space.truncated(held);
            gate.space.ack(held, existing);
          },
          onAcked: (bytes) => gate.space.ack(held, bytes),
        });
        payload.onWire?.(sent); // a continued file sends only its missing part
        this.restart.delete(block.index);
      } catch (err) {
        if (err instanceof SftpStatusError) this.restart.add(block.index);
        throw err;
      } finally {
        this.sessions.giveBack(s);
      }
      gate.space.handOver(lease);
      const sum = await this.helpers.writeStaged(block, file, algo, signal);
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
    if (!st?.isDirectory()) throw new UsageError('STAGING_DIR', `staging dir ${o.stagingDir} on the remote host is not a directory`);
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
    for (const f of leftovers) if (BLOCK_FILE.test(f.filename) && f.attrs.isFile()) space.addOrphan(f.filename, f.attrs.size);
    space.onMeasured(space.snapshot(), available);
    this.gate = new SpaceGate(space, { measure, onStuck: (m) => o.onWarning?.(`${m} in ${o.stagingDir}`) });

    if (space.free - space.reserve < space.need(o.blockLength)) {
      if (created) await s.call<void>(`rmdir ${o.stagingDir}`, (cb) => s.sftp.rmdir(o.stagingDir, cb)).catch(() => undefined);
      throw new UsageError('STAGING_SPACE', stagingSpaceMessage(o.stagingDir, space, o.blockLength));
    }
  }

  private async measure(): Promise<number> {
    const s = this.sessions.any();
    if (!s) throw new Error('no SFTP session to measure free space');
    return (await s.statvfs(this.stagingDir)).available;
  }
}

/** The refusal when not even one block fits: what is there, what is needed, what to do. */
export function stagingSpaceMessage(dir: string, space: StagingSpace, blockLength: number): string {
  const needed = space.required(blockLength);
  return (
    `not enough space to stage even one block in ${dir} on the remote host: ${formatBytes(space.free)} available, ` +
    `${formatBytes(needed)} needed (a ${formatBytes(blockLength)} block + ${formatBytes(space.reserve)} reserve); ` +
    `free ${formatBytes(needed - space.free)}, or choose another --remote-dir, a smaller --block-size or --remote-reserve, or --via stream`
  );
}

/**
 * The SFTP sessions: opened once per run (DESIGN §4), one block upload at a time each. A session
 * that died (connection lost) is replaced on demand; the pool reconnects.
 */
class SessionSet {
  private readonly all = new Set<SftpSession>();
  private idle: SftpSession[] = [];
  private readonly waiters = new WaitLine<SftpSession | undefined>();
  private opening = 0;
  private count = 0;
  private closed = false;
  /** Sessions to keep: as many as came up at the start (a lost one is replaced). */
  private want = 0;

  constructor(private readonly pool: SshPool) {}

  get size(): number {
    return this.all.size;
  }

  /** Open `n` more sessions in parallel, as many as the server allows; at least one must exist. */
  async start(n: number, signal: AbortSignal): Promise<void> {
    const started = await Promise.allSettled(Array.from({ length: n }, () => this.spawn(signal, false)));
    if (this.all.size === 0) {
      const why = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as Error | undefined;
      throw new UsageError('NO_SFTP', `no SFTP session on the remote host (${why?.message ?? 'refused'}): is its sftp subsystem enabled? Or use --via stream`, { cause: why });
    }
    this.want = this.all.size;
  }

  any(): SftpSession | undefined {
    for (const s of this.all) if (s.alive) return s;
    return undefined;
  }

  async acquire(signal: AbortSignal): Promise<SftpSession> {
    for (;;) {
      if (this.closed) throw new SshError('TARGET_CLOSED', 'SFTP sessions are closed');
      signal.throwIfAborted();
      const s = this.idle.pop();
      if (s) {
        if (s.alive) return s;
        this.drop(s);
        continue;
      }
      if (this.all.size + this.opening < this.want) {
        // Replace a lost session; without any left, wait for a channel slot.
        try {
          await this.spawn(signal, this.all.size === 0);
        } catch (err) {
          if (!(err instanceof SshError) || err.code !== 'SSH_NO_CHANNEL' || this.all.size === 0) throw err;
          this.want = Math.max(1, this.all.size);
        }
        continue;
      }
      const got = await this.waiters.wait(signal);
      if (got) return got;
    }
  }

  giveBack(s: SftpSession): void {
    if (!s.alive) {
      this.drop(s);
      this.waiters.wakeOne(undefined); // a waiter may open the replacement
      return;
    }
    if (!this.waiters.wakeOne(s)) this.idle.push(s);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.waiters.wakeAll(undefined);
    const all = [...this.all];
    this.all.clear();
    this.idle = [];
    await Promise.all(all.map((s) => this.pool.release(s.sftp)));
  }

  destroy(): void {
    this.closed = true;
    this.waiters.wakeAll(undefined);
    for (const s of this.all) {
      s.kill('aborted');
      void this.pool.release(s.sftp);
    }
    this.all.clear();
    this.idle = [];
  }

  private async spawn(signal: AbortSignal, wait: boolean): Promise<void> {
    this.opening++;
    try {
      const ch = await this.pool.sftp({ signal, wait });
      const s = new SftpSession(ch, `sftp ${++this.count}`);
      if (this.closed) {
        await this.pool.release(ch);
        return;
      }
      this.all.add(s);
      this.giveBack(s);
    } finally {
      this.opening--;
    }
  }

  private drop(s: SftpSession): void {
    if (!this.all.delete(s)) return;
    void this.pool.release(s.sftp);
  }
}
