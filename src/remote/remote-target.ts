/**
 * A remote block device or file as a BlockSink: a LivePool of helper workers, one per channel,
 * each doing one block at a time. Concurrent writeAt/hashAt calls go to whichever worker is
 * free; a worker whose channel died is replaced on the next call and the failed call rejects,
 * so the pipeline can retry.
 */
import { untilAborted } from '../abort.js';
import type { BlockDigest, BlockPayload, BlockRef, BlockSink, UnitSpec, ZeroListener, ZeroMode } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { LivePool } from '../pool/live-pool.js';
import type { ChannelSource } from '../transport/channels.js';
import { GroupFlush } from './group-flush.js';
import type { RemoteHelper } from './helper.js';
import type { RemoteProbe, ZeroHow } from './probe.js';
import type { HelperWorker, WriteResult } from './worker.js';

/**
 * `X` (zero chunks as a length) costs the target one more pipe stage for every byte: on
 * loopback, where CPU is the limit, ≈ 12 % slower on data without zeros and even at ≈ 20 %
 * zero chunks; it saves the link and both SSH ends the zero bytes. So whole blocks go as `X`
 * while recent blocks had at least this share in zero chunks.
 */
const FRAMED_FROM = 0.25;
/** Where zero chunks become holes or offloads, a block with any goes framed (else they would be written). */
const SPARSE_FRAMED_FROM = 1 / 64;

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
  /**
   * What the workers do with zero ranges (serve's mode), and how the target makes them (the
   * probe's answer for that mode). Where they become holes or are zeroed by the device, a block
   * with zero chunks goes as `X` frames whatever its share, so its zeros are never written.
   */
  zeros?: ZeroMode;
  zeroHow?: ZeroHow;
}

export class RemoteTarget implements BlockSink {
  private flushWorker?: HelperWorker;
  private flushGroup?: GroupFlush;
  /** Blocks answered `deferred` since their last write: on the device, not yet durable. */
  private readonly unflushed = new Set<number>();
  private framed = false;
  /** Zero ranges are not written (holes, offload): blocks with zero chunks go framed. */
  private sparse = false;
  /** Delta payloads go as parts, which every helper worker takes. */
  readonly takesDelta = true;
  /** Share of recent data blocks' bytes in all-zero chunks (moving average). */
  private zeroShare = 0;

  private constructor(
    private readonly pool: LivePool<HelperWorker>,
    readonly target: string,
    private readonly helper: RemoteHelper,
  ) {}

  /** xxh64 for units where the remote host computes it fast (ddt-hash or xxhsum); read when asked, since ddt-hash may be installed after the workers opened. */
  get unitAlgo(): ChecksumAlgo | undefined {
    return this.helper.unitAlgo;
  }

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
        spawn: (signal, wait) => helper.openWorker(target, channels, { signal, wait, zeros: o.zeros }),
        capacity: () => channels.capacity(),
        closedError: () => new DdtError('CLOSED', `remote target ${target} is closed`),
      },
      o.signal,
    );
    const t = new RemoteTarget(pool, target, helper);
    t.sparse = o.zeros !== undefined && o.zeros !== 'write' && o.zeroHow !== undefined && o.zeroHow !== 'write';
    // Without perl the helper takes frames one dd each: worth it only to keep zeros unwritten.
    t.framed = (o.framed ?? false) || t.sparse;
    if (t.sparse) t.zeroShare = 1;
    const first = o.deferFlush ? await (early ?? openFlusher()) : undefined;
    if (first) t.deferFlushes(first, () => helper.openWorker(target, helper.control, { signal: o.signal, label: 'flusher' }), o.signal);
    return t;
  }

  /** Workers alive (≤ channels the server allows). */
  get capacity(): number {
    return this.pool.size;
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
      const r = await this.pool.use(signal, (w) => w.writeParts(block, payload.parts, algo, signal, payload, payload.kind === 'delta'));
      if (r.zeros) payload.onZeroed?.(r.zeros, r.zeroBytes);
      return r.checksum;
    }
    const defer = this.flushGroup !== undefined;
    // Sparse: any zero chunk in recent blocks (zero blocks count as all zeros) makes it pay.
    const framed = this.framed && this.zeroShare >= (this.sparse ? SPARSE_FRAMED_FROM : FRAMED_FROM);
    const chunks = payload.kind === 'zero' ? 'zero' : payload.chunks;
    const heard = payload.kind === 'data' ? { onWire: payload.onWire, onAck: payload.onAck } : {};
    const r: WriteResult = await this.pool.use(signal, (w) => w.writeBlock(block, chunks, algo, signal, { defer, framed, ...heard }));
    if (r.deferred) this.unflushed.add(block.index);
    if (payload.kind === 'data' || this.sparse) this.zeroShare = (this.zeroShare + r.zeroBytes / block.length) / 2;
    if (r.zeros) payload.onZeroed?.(r.zeros, r.zeroBytes);
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

  /**
   * A block staged as a file on the remote host (sftp, rsync): written at its offset, file
   * removed. `zeros`: how many of its bytes were zero chunks, and who hears how they were made.
   */
  async writeStaged(block: BlockRef, remoteFile: string, algo: ChecksumAlgo, signal: AbortSignal, zeros?: { bytes(): number; onZeroed?: ZeroListener }): Promise<string> {
    const r = await this.pool.use(signal, (w) => w.writeStaged(block, remoteFile, algo, signal));
    if (r.zeros && zeros) zeros.onZeroed?.(r.zeros, zeros.bytes());
    return r.checksum;
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

/** RemoteTarget's zero options for a run in `mode` on the target `probe` describes. */
export function zeroOptions(probe: RemoteProbe, mode: ZeroMode): { zeros: ZeroMode; zeroHow: ZeroHow } {
  return { zeros: mode, zeroHow: mode === 'discard' ? probe.zeroDiscard : mode === 'sparse' ? probe.zeroSparse : 'write' };
}
