/**
 * A data path whose own connections wait for the first block that must go. In a re-sync
 * (`--skip-identical`) the target's checksums come from a worker of their own on the helper's
 * connection, so until a block differs the path carries nothing: where nothing or little
 * changed, its connections and sessions (OpenSSH masters, a helper per session on the remote
 * host) would cost the run more than the blocks they carry. They are set up at the first write
 * instead, which then waits for them once, or as soon as the run knows that a write is coming
 * (`expectWrite`: some block's checksums differ already), so that their set-up overlaps the rest.
 */
import type { BlockPayload, BlockRef, BlockSink } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { PathName } from '../journal/records.js';
import { DdtError } from '../errors.js';
import { trace } from '../trace.js';
import type { PreparedPath } from './types.js';

/**
 * `prepare` sets the path up (once, at the first write); `workers`: the blocks its sink will
 * take at once, the pipeline's concurrency until then; `unitAlgo`: the target's, as the sink
 * would say it.
 */
export function deferredPath(o: { name: PathName; workers: number; prepare(): Promise<PreparedPath>; unitAlgo(): ChecksumAlgo | undefined }): PreparedPath {
  let prepared: Promise<PreparedPath> | undefined;
  let closed = false;
  const real = () => {
    if (closed) return Promise.reject(new DdtError('CLOSED', `the ${o.name} data path is closed`));
    return (prepared ??= (trace(`path ${o.name}: set up for the first write`), o.prepare()));
  };
  return {
    name: o.name,
    // What the path records for itself where it has no settings of its own (as a prepared one
    // would, unless it fell back to another path: a resume then tries this one first again).
    record: { name: o.name },
    describe: [],
    takesParts: true,
    openSink: (opts) => Promise.resolve(new DeferredSink(async () => (await real()).openSink(opts), o.workers, o.unitAlgo)),
    openSource: async () => (await real()).openSource(),
    close: async (ok) => {
      closed = true;
      const p = await prepared?.catch(() => undefined);
      await p?.close(ok);
    },
  };
}

/**
 * A sink opened by its first write (or hash); until then it only says what it will take. It has
 * no stream of its own: a re-sync's target checksums come from the early stream.
 */
class DeferredSink implements BlockSink {
  private opening?: Promise<BlockSink>;
  private closed = false;
  readonly takesDelta = true;

  constructor(
    private readonly open: () => Promise<BlockSink>,
    readonly capacity: number,
    private readonly unitAlgoOf: () => ChecksumAlgo | undefined,
  ) {}

  get unitAlgo(): ChecksumAlgo | undefined {
    return this.unitAlgoOf();
  }

  private sink(): Promise<BlockSink> {
    // Closed: a late caller (a write after an abort, an early open's hint) opens nothing.
    if (this.closed) return Promise.reject(new DdtError('CLOSED', 'the remote target is closed'));
    return (this.opening ??= this.open());
  }

  expectWrite(): void {
    this.sink().catch(() => undefined); // the write that follows reports a failure
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return (await this.sink()).writeAt(block, payload, algo, signal);
  }

  async durable(block: BlockRef, signal: AbortSignal): Promise<void> {
    await (await this.sink()).durable?.(block, signal);
  }

  async hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return (await this.sink()).hashAt(block, algo, signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    const sink = await this.opening?.catch(() => undefined);
    await sink?.close();
  }

  async abort(): Promise<void> {
    this.closed = true;
    const sink = await this.opening?.catch(() => undefined);
    await sink?.abort();
  }
}
