/**
 * A remote block device or file as a TargetWriter/TargetHasher: a WorkerPool of HelperWorkers,
 * one per channel, each doing one block at a time. Concurrent writeAt/hashAt calls go to
 * whichever worker is free. A worker whose channel died (connection lost, framing broken) is
 * dropped and replaced on the next call; the failed call rejects so the engine can retry.
 */
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockPayload, BlockRef, TargetHasher, TargetWriter } from '../engine/types.js';
import { SshError } from '../errors.js';
import type { RemoteHelper } from './helper.js';
import type { CompressionPolicy } from '../engine/compress.js';
import { throttled, type TokenBucket } from '../transport/bwlimit.js';
import type { HelperWorker } from './worker.js';
import { WorkerPool } from './worker-pool.js';

export interface RemoteTargetOptions {
  /** Upper bound on workers; default: every channel the pool has. */
  workers?: number;
  signal?: AbortSignal;
  /** `--compress`: blocks go as parts (raw, gzip, zero runs) when set and not `none`. */
  compress?: CompressionPolicy;
  /** `--bwlimit`: one bucket for every channel. */
  bucket?: TokenBucket;
}

export class RemoteTargetWriter implements TargetWriter, TargetHasher {
  private closed = false;
  private compress?: CompressionPolicy;
  private bucket?: TokenBucket;
  private inFlight = 0;
  private drained: Array<() => void> = [];

  private constructor(
    private readonly pool: WorkerPool<HelperWorker>,
    readonly target: string,
  ) {}

  /**
   * Start the workers up front, in parallel: the channel opens reveal the server's real
   * limit (MaxSessions) before the transfer starts. At least one must come up.
   */
  static async open(helper: RemoteHelper, target: string, opts: RemoteTargetOptions = {}): Promise<RemoteTargetWriter> {
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
    return w;
  }

  /** Workers currently alive (≤ channels the server allows). */
  get workers(): number {
    return this.pool.size;
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (payload.kind === 'zero') return this.withWorker(signal, (w) => w.write(block, payload, algo, signal));
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
    const sum = await this.withWorker(signal, (w) => w.write(block, { kind: 'data', chunks }, algo, signal));
    policy?.noteWire(block.length);
    payload.onWire?.(block.length);
    return sum;
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
    await this.pool.close();
  }

  /** Drop every channel now; remote helpers see EOF and exit (a partial block stays unproven). */
  async abort(): Promise<void> {
    this.closed = true;
    this.pool.abort();
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
