/**
 * A remote block device or file as a TargetWriter/TargetHasher: a WorkerPool of HelperWorkers,
 * one per channel, each doing one block at a time. Concurrent writeAt/hashAt calls go to
 * whichever worker is free. A worker whose channel died (connection lost, framing broken) is
 * dropped and replaced on the next call; the failed call rejects so the engine can retry.
 */
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockPayload, BlockRef, TargetHasher, TargetWriter } from '../engine/types.js';
import { SshError } from '../errors.js';
import { untilAborted } from '../abort.js';
import type { RemoteHelper } from './helper.js';
import type { CompressionPolicy } from '../engine/compress.js';
import { throttled, type TokenBucket } from '../transport/bwlimit.js';
import type { HelperWorker, WriteResult } from './worker.js';
import { WorkerPool } from './worker-pool.js';
import { GroupFlush } from './group-flush.js';

/**
 * `X` (zero chunks as a length) costs the target one more pipe stage for every byte: on
 * loopback, where CPU is the limit, ≈ 12 % slower on data without zeros and even at ≈ 20 %
 * zero chunks (1 and 2 GiB mixed images); it saves the link and both SSH ends the zero bytes.
 * So whole blocks go as `X` while recent blocks had at least this share in zero chunks.
 */
const SPARSE_FROM = 0.25;

export interface RemoteTargetOptions {
  /** Upper bound on workers; default: every channel the pool has. */
  workers?: number;
  signal?: AbortSignal;
  /** `--compress`: blocks go as parts (raw, gzip, zero runs) when set and not `none`. */
  compress?: CompressionPolicy;
  /** `--bwlimit`: one bucket for every channel. */
  bucket?: TokenBucket;
  /**
   * Defer flushes (group commit): whole blocks are written without an fsync each where the
   * helper writes and reads back with O_DIRECT, and `durable()` waits for a shared flush run by
   * a flusher worker on a spare channel of the ssh2 connection (`--via openssh` leaves it idle);
   * without one, every block is flushed as it is written.
   */
  deferFlush?: boolean;
  /**
   * Whole blocks as `X` frames: zero chunks inside a block go as a length, not as bytes (the
   * helper's host runs perl, RemoteHelper.sparseWrites).
   */
  sparse?: boolean;
}

export class RemoteTargetWriter implements TargetWriter, TargetHasher {
  private closed = false;
  private compress?: CompressionPolicy;
  private bucket?: TokenBucket;
  private inFlight = 0;
  private drained: Array<() => void> = [];
  /** Deferred flushes (deferFlush): the flusher's worker, reopened when it died, the shared
   * flush, and the blocks answered `deferred` since their last write (on the device, not yet
   * durable). */
  private flushWorker?: HelperWorker;
  private flushGroup?: GroupFlush;
  private readonly unflushed = new Set<number>();
  private sparse = false;
  /** Share of recent data blocks' bytes in all-zero chunks (moving average). */
  private zeroShare = 0;

  private constructor(
    private readonly pool: WorkerPool<HelperWorker>,
    readonly target: string,
  ) {}

  /**
   * Start the workers up front, in parallel: the channel opens reveal the server's real
   * limit (MaxSessions) before the transfer starts. At least one must come up.
   */
  static async open(helper: RemoteHelper, target: string, opts: RemoteTargetOptions = {}): Promise<RemoteTargetWriter> {
    // The flusher takes a spare channel of the ssh2 connection: opened with the workers when
    // they run over OpenSSH, after them when they share that connection. No spare channel:
    // every block is flushed as it is written, as without deferFlush.
    const openFlusher = () => helper.openControlWorker(target, { signal: opts.signal, wait: false }).catch(() => undefined);
    const early = opts.deferFlush && helper.openSshMasters.length > 0 ? openFlusher() : undefined;
    const pool = await WorkerPool.start<HelperWorker>(
      opts.workers ?? Infinity,
      {
        spawn: (signal, wait) => helper.openWorker(target, { signal, wait }),
        capacity: () => helper.workerCapacity(),
        closedError: () => new SshError('TARGET_CLOSED', `remote target ${target} is closed`),
      },
      opts.signal,
    );
    const w = new RemoteTargetWriter(pool, target);
    w.compress = opts.compress?.mode === 'none' ? undefined : opts.compress;
    w.bucket = opts.bucket;
    w.sparse = opts.sparse ?? false;
    const first = opts.deferFlush ? await (early ?? openFlusher()) : undefined;
    if (first) w.deferFlushes(first, () => helper.openControlWorker(target, { signal: opts.signal }), opts.signal);
    return w;
  }

  private deferFlushes(first: HelperWorker, reopen: () => Promise<HelperWorker>, signal = new AbortController().signal): void {
    this.flushWorker = first;
    this.flushGroup = new GroupFlush(async () => {
      if (!this.flushWorker?.alive) this.flushWorker = await reopen();
      const worker = this.flushWorker;
      try {
        await worker.flush(signal);
      } catch (err) {
        worker.destroy('flush failed');
        throw err;
      }
    });
  }

  /** Blocks answered `deferred` and not yet covered by a flush. */
  get unflushedBlocks(): number {
    return this.unflushed.size;
  }

  /** Whether whole blocks may skip their own flush (a flusher is up; see deferFlush). */
  get defersFlush(): boolean {
    return this.flushGroup !== undefined;
  }

  /** Workers currently alive (≤ channels the server allows). */
  get workers(): number {
    return this.pool.size;
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    this.unflushed.delete(block.index);
    if (payload.kind === 'zero') return (await this.writeWhole(block, payload, algo, signal)).checksum;
    const policy = this.compress;
    if (policy?.wantsParts()) {
      const parts = throttled(policy.parts(block.offset, payload.chunks), this.bucket, (p) => (p.kind === 'zero' ? 0 : p.data.length), signal);
      return this.withWorker(signal, (w) =>
        w.writeParts(block, parts, algo, signal, (n) => {
          policy.noteWire(n);
          payload.onWire?.(n);
        }),
      );
    }
    const chunks = throttled(policy ? policy.sampled(payload.chunks) : payload.chunks, this.bucket, (c) => c.length, signal);
    const r = await this.writeWhole(block, { kind: 'data', chunks }, algo, signal);
    policy?.noteWire(r.wire);
    payload.onWire?.(r.wire);
    return r.checksum;
  }

  /**
   * Resolves once the block's last write is durable: at once where it was flushed as it was
   * written, else after a shared flush that began after its answer (see deferFlush).
   */
  async durable(block: BlockRef, signal: AbortSignal): Promise<void> {
    if (!this.unflushed.has(block.index) || !this.flushGroup) return;
    signal.throwIfAborted();
    await untilAborted(this.flushGroup.request(), signal);
    this.unflushed.delete(block.index);
  }

  private async writeWhole(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<WriteResult> {
    const defer = this.flushGroup !== undefined;
    const sparse = this.sparse && this.zeroShare >= SPARSE_FROM;
    const r = await this.withWorker(signal, (w) => w.writeBlock(block, payload, algo, signal, { defer, sparse }));
    if (r.deferred) this.unflushed.add(block.index);
    if (payload.kind === 'data') this.zeroShare = (this.zeroShare + r.zeroBytes / block.length) / 2;
    return r;
  }

  /** `--skip-identical`: one worker hashes the blocks in order, requests pipelined. */
  async *hashStream(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal): AsyncGenerator<{ block: BlockRef; checksum: string }> {
    const w = await this.acquire(signal);
    try {
      yield* w.hashMany(blocks, algo, signal);
    } finally {
      this.release(w);
    }
  }

  async hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.withWorker(signal, (w) => w.hash(block, algo, signal));
  }

  /** A block staged as a file on the remote host (`--via sftp`): written at its offset, file removed. */
  async writeStaged(block: BlockRef, remoteFile: string, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.withWorker(signal, (w) => w.writeStaged(block, remoteFile, algo, signal));
  }

  /** Let the workers finish their current block, then quit them politely. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    this.pool.drain();
    while (this.inFlight > 0) await new Promise<void>((r) => this.drained.push(r));
    await Promise.all([this.pool.close(), this.flushWorker?.close()]);
  }

  /** Drop every channel now; remote helpers see EOF and exit (a partial block stays unproven). */
  async abort(): Promise<void> {
    this.closed = true;
    this.pool.abort();
    this.flushWorker?.destroy('aborted');
  }

  // ---------------------------------------------------------------------------------------

  private async withWorker<T>(signal: AbortSignal, fn: (w: HelperWorker) => Promise<T>): Promise<T> {
    const w = await this.acquire(signal);
    try {
      return await fn(w);
    } finally {
      this.release(w);
    }
  }

  private async acquire(signal: AbortSignal): Promise<HelperWorker> {
    if (this.closed) throw new SshError('TARGET_CLOSED', `remote target ${this.target} is closed`);
    const w = await this.pool.acquire(signal);
    this.inFlight++;
    return w;
  }

  private release(w: HelperWorker): void {
    this.inFlight--;
    this.pool.giveBack(w);
    if (this.inFlight === 0) for (const r of this.drained.splice(0)) r();
  }
}
