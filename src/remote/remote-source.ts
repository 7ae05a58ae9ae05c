/**
 * A remote block device or file as a BlockSource (`ddt pull`): a LivePool of read workers, one
 * per channel, each reading one block at a time on the source host and hashing there exactly
 * the bytes it sends. A worker whose channel died is replaced on the next call; the failed call
 * rejects so the pipeline can retry the block.
 */
import type { BlockDigest, BlockPart, BlockRef, BlockSource, ByteRange, OpenedBlock, UnitSpec } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { LivePool } from '../pool/live-pool.js';
import type { ChannelSource } from '../transport/channels.js';
import type { RemoteHelper } from './helper.js';
import { validateRemotePath } from './quote.js';
import { HelperReadWorker } from './read-worker.js';
import { parseIdentity, type RemotePathInfo } from './probe.js';
import { digestsOf, hashRequests } from './unit-hashes.js';

export type { RemotePathInfo } from './probe.js';

/** `ddt-helper.sh identity PATH`: size and what identifies the path between runs. */
export async function remotePathInfo(helper: RemoteHelper, path: string, signal?: AbortSignal): Promise<RemotePathInfo> {
  validateRemotePath(path, 'remote path');
  return parseIdentity(await helper.run(['identity', path], signal));
}

export class RemoteSource implements BlockSource {
  /** which connection carried the last read of a block (a number per block: small) */
  private readonly carriedBy = new Map<number, number>();

  private constructor(
    private readonly pool: LivePool<HelperReadWorker>,
    readonly source: string,
    private readonly signal: AbortSignal,
    private readonly helper: RemoteHelper,
  ) {
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  /** The run stops: drop every channel now; blocks in flight stay unproven. */
  private readonly onAbort = () => this.pool.destroyAll('aborted');

  /** Start the workers up front, in parallel (reveals the server's channel limit); at least one must come up. */
  static async open(helper: RemoteHelper, source: string, channels: ChannelSource, o: { workers?: number; signal?: AbortSignal } = {}): Promise<RemoteSource> {
    let count = 0;
    const cmd = helper.serveCommand(source);
    const pool = await LivePool.start<HelperReadWorker>(
      o.workers ?? Infinity,
      {
        spawn: async (signal, wait) => {
          let worker: HelperReadWorker | undefined;
          const label = `reader ${++count}`;
          const ch = await channels.exec(cmd, {
            signal,
            wait,
            // Where a session can be refused only after it started, a no-op proves it runs.
            ready: async (ch) => {
              worker = new HelperReadWorker(channels, ch, label, undefined);
              await worker.ready(signal ?? new AbortController().signal);
            },
          });
          const w = worker ?? new HelperReadWorker(channels, ch, label, undefined);
          w.connection = channels.connectionOf(ch);
          return w;
        },
        capacity: () => channels.capacity(),
        closedError: () => new DdtError('CLOSED', `remote source ${source} is closed`),
      },
      o.signal,
    );
    return new RemoteSource(pool, source, o.signal ?? new AbortController().signal, helper);
  }

  /** Workers alive: how many blocks can be read at once. */
  get capacity(): number {
    return this.pool.size;
  }

  async openBlock(block: BlockRef, algo: ChecksumAlgo): Promise<OpenedBlock> {
    const w = await this.pool.take(this.signal);
    if (w.connection !== undefined) this.carriedBy.set(block.index, w.connection);
    return w.read(block, algo, this.signal, () => this.pool.put(w));
  }

  /** Checksum of a source block without its data (`--skip-identical`), hashed on the source host. */
  async hashBlock(block: BlockRef, algo: ChecksumAlgo): Promise<{ checksum: string; badRanges: ByteRange[] }> {
    return { checksum: await this.pool.use(this.signal, (w) => w.hash(block, algo, this.signal)), badRanges: [] };
  }

  /** xxh64 for units where the source host computes it fast (ddt-hash or xxhsum). */
  get unitAlgo(): ChecksumAlgo | undefined {
    return this.helper.unitAlgo;
  }

  /** `--skip-identical`: the source's checksums of the blocks (and their units), streamed from one worker. */
  async *hashStream(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): AsyncGenerator<BlockDigest> {
    const w = await this.pool.take(signal);
    try {
      const reqs = hashRequests(blocks, algo, units);
      const lines = w.hashLines(reqs, signal);
      try {
        for (const req of reqs) yield* digestsOf(req.blocks, lines, algo, units);
      } finally {
        await lines.return(undefined); // also after a bad answer: the worker goes back settled
      }
    } finally {
      this.pool.put(w);
    }
  }

  /** The differing units of a block (a delta), read by one worker with `R`, zero ones as a length. */
  async *openRanges(block: BlockRef, ranges: ByteRange[], algo: ChecksumAlgo): AsyncGenerator<BlockPart> {
    const w = await this.pool.take(this.signal);
    let idle = Promise.resolve();
    try {
      for (const r of ranges) {
        await idle;
        let done!: () => void;
        idle = new Promise<void>((resolve) => (done = resolve));
        const opened = await w.read({ index: block.index, offset: r.offset, length: r.length }, algo, this.signal, () => done());
        if (opened.payload.kind !== 'data') {
          yield { kind: 'zero', offset: r.offset, length: r.length };
          continue;
        }
        let pos = r.offset;
        for await (const data of opened.payload.chunks) {
          yield { kind: 'raw', offset: pos, length: data.length, data };
          pos += data.length;
        }
        await opened.checksum;
      }
      await idle;
    } finally {
      this.pool.put(w);
    }
  }

  /** The connection that carried block `index` (for per-connection progress, asked per chunk). */
  connectionOf(index: number): number | undefined {
    return this.carriedBy.get(index);
  }

  /** Quit the idle workers politely and drop busy ones (their blocks stay unproven). Idempotent. */
  async close(): Promise<void> {
    this.signal.removeEventListener('abort', this.onAbort);
    if (this.signal.aborted) this.pool.abort(); // a payload nobody reads any more must not hold the close
    else await this.pool.close();
  }
}
