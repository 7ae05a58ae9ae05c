/**
 * A remote block device or file as a BlockSource (`ddt pull`): a LivePool of read workers, one
 * per channel, each reading one block at a time on the source host and hashing there exactly
 * the bytes it sends. A worker whose channel died is replaced on the next call; the failed call
 * rejects so the pipeline can retry the block.
 */
import type { DeviceIdentity } from '../block/identity.js';
import type { BlockDigest, BlockPart, BlockRef, BlockSource, ByteRange, OpenedBlock, UnitSpec } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { LivePool } from '../pool/live-pool.js';
import type { ChannelSource } from '../transport/channels.js';
import type { RemoteHelper } from './helper.js';
import { validateRemotePath } from './quote.js';
import { HelperReadWorker } from './read-worker.js';
import { digestsOf, hashRequests } from './unit-hashes.js';

export interface RemotePathInfo {
  kind: 'file' | 'block' | 'other';
  size: number;
  readable: boolean;
  identity: DeviceIdentity;
}

/** `ddt-helper.sh identity PATH`: size and what identifies the path between runs. */
export async function remotePathInfo(helper: RemoteHelper, path: string, signal?: AbortSignal): Promise<RemotePathInfo> {
  validateRemotePath(path, 'remote path');
  const kv = await helper.facts(['identity', path], signal);
  const kindText = kv.get('kind');
  const kind = kindText === 'file' || kindText === 'block' ? kindText : 'other';
  const size = Number(kv.get('size') ?? NaN);
  if (!Number.isSafeInteger(size) || size < 0) throw new DdtError('REMOTE_PROTOCOL', `remote identity gave no valid size (${JSON.stringify(kv.get('size'))})`);
  const identity: DeviceIdentity = { kind: kind === 'block' ? 'block' : 'file', size };
  const set = (k: keyof DeviceIdentity, v: string | undefined) => {
    if (v) (identity as unknown as Record<string, string>)[k] = v;
  };
  if (kind === 'file') {
    set('ino', kv.get('ino'));
    set('dev', kv.get('dev'));
    const frac = (kv.get('mtime_frac') ?? '').padEnd(3, '0').slice(0, 3);
    identity.mtimeMs = Number(kv.get('mtime') ?? 0) * 1000 + Number(/^\d{3}$/.test(frac) ? frac : 0);
  } else if (kind === 'block') {
    set('devno', kv.get('devno'));
    set('serial', kv.get('serial'));
    set('wwid', kv.get('wwid'));
  }
  return { kind, size, readable: kv.get('readable') === '1', identity };
}

export class RemoteSource implements BlockSource {
  /** which connection carried the last read of a block (consumed by `connectionOf`) */
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
      for (const req of reqs) yield* digestsOf(req.blocks, lines, algo, units);
      await lines.return(undefined);
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

  /** The connection that carried block `index` (once; for per-connection progress). */
  connectionOf(index: number): number | undefined {
    const c = this.carriedBy.get(index);
    this.carriedBy.delete(index);
    return c;
  }

  /** Quit the idle workers politely and drop busy ones (their blocks stay unproven). Idempotent. */
  async close(): Promise<void> {
    this.signal.removeEventListener('abort', this.onAbort);
    if (this.signal.aborted) this.pool.abort(); // a payload nobody reads any more must not hold the close
    else await this.pool.close();
  }
}
