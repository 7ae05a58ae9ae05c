/**
 * A remote block device or file as a TargetWriter/TargetHasher: a set of HelperWorkers, one per
 * SSH channel the pool can give, each doing one block at a time. Concurrent writeAt/hashAt calls
 * go to whichever worker is free. A worker whose channel died (connection lost, framing broken)
 * is dropped and replaced on the next call; the failed call rejects so the engine can retry.
 */
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockPayload, BlockRef, TargetHasher, TargetWriter } from '../engine/types.js';
import { SshError } from '../errors.js';
import type { RemoteHelper } from './helper.js';
import type { CompressionPolicy } from '../engine/compress.js';
import { throttled, type TokenBucket } from '../transport/bwlimit.js';
import type { HelperWorker } from './worker.js';

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
  private readonly idle: HelperWorker[] = [];
  private readonly all = new Set<HelperWorker>();
  private opening = 0;
  private waiters: Array<(w: HelperWorker | undefined) => void> = [];
  private closed = false;
  private maxWorkers: number;
  private compress?: CompressionPolicy;
  private bucket?: TokenBucket;
  private inFlight = 0;
  private drained: Array<() => void> = [];

  private constructor(
    private readonly helper: RemoteHelper,
    readonly target: string,
    workers: number,
  ) {
    this.maxWorkers = workers;
  }

  /**
   * Start the workers up front, in parallel: the channel opens reveal the server's real
   * limit (MaxSessions) before the transfer starts. At least one must come up.
   */
  static async open(helper: RemoteHelper, target: string, opts: RemoteTargetOptions = {}): Promise<RemoteTargetWriter> {
    const want = Math.max(1, Math.min(opts.workers ?? Infinity, helper.workerCapacity()));
    const w = new RemoteTargetWriter(helper, target, want);
    w.compress = opts.compress?.mode === 'none' ? undefined : opts.compress;
    w.bucket = opts.bucket;
    const started = await Promise.allSettled(Array.from({ length: want }, () => w.spawn(opts.signal)));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (w.all.size === 0) throw failed?.reason ?? new SshError('SSH_NO_CHANNEL', 'no worker channel could be opened');
    w.maxWorkers = Math.min(w.all.size, helper.workerCapacity());
    return w;
  }

  /** Workers currently alive (≤ channels the server allows). */
  get workers(): number {
    return this.all.size;
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
    const chunks = throttled(payload.chunks, this.bucket, (c) => c.length, signal);
    const sum = await this.withWorker(signal, (w) => w.write(block, { kind: 'data', chunks }, algo, signal));
    policy?.noteWire(block.length);
    payload.onWire?.(block.length);
    return sum;
  }

  /** `--skip-identical`: one worker hashes the blocks in order, requests pipelined. */
  async *hashStream(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal): AsyncGenerator<{ block: BlockRef; checksum: string }> {
    const w = await this.acquire(signal);
    this.inFlight++;
    try {
      yield* w.hashMany(blocks, algo, signal);
    } finally {
      this.inFlight--;
      this.giveBack(w);
      if (this.inFlight === 0) for (const r of this.drained.splice(0)) r();
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
    this.wakeAll();
    while (this.inFlight > 0) await new Promise<void>((r) => this.drained.push(r));
    const workers = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(workers.map((w) => w.close()));
  }

  /** Drop every channel now; remote helpers see EOF and exit (a partial block stays unproven). */
  async abort(): Promise<void> {
    this.closed = true;
    this.wakeAll();
    for (const w of this.all) w.destroy('aborted');
    this.all.clear();
    this.idle.length = 0;
  }

  // ---------------------------------------------------------------------------------------

  private async withWorker<T>(signal: AbortSignal, fn: (w: HelperWorker) => Promise<T>): Promise<T> {
    const w = await this.acquire(signal);
    this.inFlight++;
    try {
      return await fn(w);
    } finally {
      this.inFlight--;
      this.giveBack(w);
      if (this.inFlight === 0) for (const r of this.drained.splice(0)) r();
    }
  }

  private async acquire(signal: AbortSignal): Promise<HelperWorker> {
    for (;;) {
      if (this.closed) throw new SshError('TARGET_CLOSED', `remote target ${this.target} is closed`);
      signal.throwIfAborted();
      const w = this.idle.pop();
      if (w) {
        if (w.alive) return w;
        this.all.delete(w);
        continue;
      }
      if (this.all.size + this.opening < Math.min(this.maxWorkers, this.helper.workerCapacity())) {
        // Replace a lost worker. With other workers alive, don't wait for a pool slot (if the
        // server shrank the limit meanwhile, wait for a busy worker instead); with none, wait.
        try {
          await this.spawn(signal, this.all.size === 0);
        } catch (err) {
          if (!(err instanceof SshError) || err.code !== 'SSH_NO_CHANNEL') throw err;
          this.maxWorkers = Math.max(1, this.all.size);
          if (this.all.size === 0) throw err;
        }
        continue;
      }
      const got = await this.waitIdle(signal);
      if (got) return got;
    }
  }

  private async spawn(signal?: AbortSignal, wait = false): Promise<void> {
    this.opening++;
    try {
      const w = await this.helper.openWorker(this.target, { signal, wait });
      if (this.closed) {
        await w.close();
        return;
      }
      this.all.add(w);
      this.giveBack(w);
    } finally {
      this.opening--;
    }
  }

  private giveBack(w: HelperWorker): void {
    if (!w.alive) {
      this.all.delete(w);
      // Someone waiting can now open a replacement.
      this.waiters.shift()?.(undefined);
      return;
    }
    const next = this.waiters.shift();
    if (next) next(w);
    else this.idle.push(w);
  }

  private waitIdle(signal: AbortSignal): Promise<HelperWorker | undefined> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.waiters = this.waiters.filter((f) => f !== take);
        reject(signal.reason);
      };
      const take = (w: HelperWorker | undefined) => {
        signal.removeEventListener('abort', onAbort);
        resolve(w);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(take);
    });
  }

  private wakeAll(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f(undefined);
  }
}
