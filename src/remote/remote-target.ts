/**
 * A remote block device or file as a BlockSink: a LivePool of helper workers, one per channel,
 * each doing one block at a time. Concurrent writeAt/hashAt calls go to whichever worker is
 * free; a worker whose channel died is replaced on the next call and the failed call rejects,
 * so the pipeline can retry.
 */
import { untilAborted } from '../abort.js';
import type { BlockDigest, BlockPayload, BlockRef, BlockSink, UnitSpec } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { LivePool } from '../pool/live-pool.js';
import type { ChannelSource } from '../transport/channels.js';
import { GroupFlush } from './group-flush.js';
import type { RemoteHelper } from './helper.js';
import type { HelperWorker, WriteResult } from './worker.js';

/**
 * `X` (zero chunks as a length) costs the target one more pipe stage for every byte: on
 * loopback, where CPU is the limit, ≈ 12 % slower on data without zeros and even at ≈ 20 %
 * zero chunks; it saves the link and both SSH ends the zero bytes. So whole blocks go as `X`
 * while recent blocks had at least this share in zero chunks.
 */
const FRAMED_FROM = 0.25;

export interface RemoteTargetOptions {
  /** Upper bound on workers; default: every channel `channels` has. */
  workers?: number;
  signal?: AbortSignal;
  /**
   * Group commit: whole blocks are written without an fsync each where the helper writes and
   * reads back with O_DIRECT, and `durable()` waits for a shared flush run by a flusher worker
   * on a spare channel of the helper's control connection (idle when the blocks go over
   * OpenSSH). Without a spare channel every block is flushed as it is written.
   */
  deferFlush?: boolean;
  /** Whole blocks may go as `X` frames (the host runs perl, which decodes a block's frames in one process). */
  framed?: boolean;
}

export class RemoteTarget implements BlockSink {
  private flushWorker?: HelperWorker;
  private flushGroup?: GroupFlush;
  /** Blocks answered `deferred` since their last write: on the device, not yet durable. */
  private readonly unflushed = new Set<number>();
  private framed = false;
  /** Delta payloads go as parts, which every helper worker takes. */
  readonly takesDelta = true;
  /** xxh64 for units where the remote host computes it fast (ddt-hash or xxhsum). */
  unitAlgo?: ChecksumAlgo;
  /** The link's round trip as the path measured it, for the summary. */
  rttMs?: number;
  /** Share of recent data blocks' bytes in all-zero chunks (moving average). */
  private zeroShare = 0;

  private constructor(
    private readonly pool: LivePool<HelperWorker>,
    readonly target: string,
  ) {}

  /**
   * Start the workers up front, in parallel: the channel opens reveal the server's real limit
   * (MaxSessions) before the transfer starts. At least one must come up.
   */
  static async open(helper: RemoteHelper, target: string, channels: ChannelSource, o: RemoteTargetOptions = {}): Promise<RemoteTarget> {
    // The flusher takes a spare channel of the control connection: opened with the workers when
    // they run elsewhere (OpenSSH), after them when they share that connection.
    const openFlusher = () => helper.openWorker(target, helper.control, { signal: o.signal, wait: false, label: 'flusher' }).catch(() => undefined);
    const separate = (channels as unknown) !== helper.control;
    const early = o.deferFlush && separate ? openFlusher() : undefined;
    const pool = await LivePool.start<HelperWorker>(
      o.workers ?? Infinity,
      {
        spawn: (signal, wait) => helper.openWorker(target, channels, { signal, wait }),
        capacity: () => channels.capacity(),
        closedError: () => new DdtError('CLOSED', `remote target ${target} is closed`),
      },
      o.signal,
    );
    const t = new RemoteTarget(pool, target);
    t.framed = o.framed ?? false;
    t.unitAlgo = helper.unitAlgo;
    const first = o.deferFlush ? await (early ?? openFlusher()) : undefined;
    if (first) t.deferFlushes(first, () => helper.openWorker(target, helper.control, { signal: o.signal, label: 'flusher' }), o.signal);
    return t;
  }

  /** Workers alive (≤ channels the server allows). */
  get capacity(): number {
    return this.pool.size;
  }

  /** Open up to `n` more workers (the channel source gave more room). */
  async grow(n: number, signal?: AbortSignal): Promise<void> {
    await this.pool.grow(n, signal);
  }

  /**
   * One round trip to the helper through the flusher's connection, in ms (a no-op request on an
   * open session: the link's latency plus a shell's reply), or undefined without a flusher.
   */
  async roundTrip(signal: AbortSignal): Promise<number | undefined> {
    const w = this.flushWorker;
    if (!w?.alive) return undefined;
    const t0 = performance.now();
    await w.ready(signal);
    return performance.now() - t0;
  }

  /** Blocks answered `deferred` and not yet covered by a flush. */
  get unflushedBlocks(): number {
    return this.unflushed.size;
  }

  /** Whether whole blocks may skip their own flush (a flusher is up; see deferFlush). */
  get defersFlush(): boolean {
    return this.flushGroup !== undefined;
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    this.unflushed.delete(block.index);
    if (payload.kind === 'parts' || payload.kind === 'delta') {
      return this.pool.use(signal, (w) => w.writeParts(block, payload.parts, algo, signal, payload.onWire, payload.kind === 'delta'));
    }
    const defer = this.flushGroup !== undefined;
    const framed = this.framed && this.zeroShare >= FRAMED_FROM;
    const chunks = payload.kind === 'zero' ? 'zero' : payload.chunks;
    const onWire = payload.kind === 'data' ? payload.onWire : undefined;
    const r: WriteResult = await this.pool.use(signal, (w) => w.writeBlock(block, chunks, algo, signal, { defer, framed, onWire }));
    if (r.deferred) this.unflushed.add(block.index);
    if (payload.kind === 'data') this.zeroShare = (this.zeroShare + r.zeroBytes / block.length) / 2;
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

  /**
   * `--skip-identical`, resume's re-check: one worker hashes the blocks in order (and their
   * units, where asked), one streaming hasher on the remote host per request, requests pipelined.
   */
  async *hashStream(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): AsyncGenerator<BlockDigest> {
    const w = await this.pool.take(signal);
    try {
      yield* w.hashMany(blocks, algo, signal, units);
    } finally {
      this.pool.put(w);
    }
  }

  async hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.pool.use(signal, (w) => w.hash(block, algo, signal));
  }

  /** A block staged as a file on the remote host (sftp, rsync): written at its offset, file removed. */
  async writeStaged(block: BlockRef, remoteFile: string, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.pool.use(signal, (w) => w.writeStaged(block, remoteFile, algo, signal));
  }

  /** Let the workers finish their current block, then quit them politely. Idempotent. */
  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.flushWorker?.close()]);
  }

  /** Drop every channel now; remote helpers see EOF and exit (a partial block stays unproven). */
  async abort(): Promise<void> {
    this.pool.abort();
    this.flushWorker?.destroy('aborted');
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
}
