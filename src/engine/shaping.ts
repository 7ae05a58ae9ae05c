/**
 * How block bytes are put on the link, as wrappers around any BlockSink (as restic's
 * LimitBackend wraps a backend): `--bwlimit` paces the payload, `--compress` turns whole blocks
 * into parts (zero runs as commands, gzip where it shrinks) for sinks that take parts, and every
 * write waits while the target's lock is not this run's. The sinks themselves know nothing of these.
 */
import type { HeldLock } from '../block/last-writer.js';
import type { BlockPart, BlockPayload, BlockRef, BlockSink } from '../block/types.js';
import { isZero } from '../block/zero.js';
import { DdtError, messageOf, retryClassOf } from '../errors.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { CompressMode } from '../journal/records.js';
import { parseBwLimit, TokenBucket } from '../transport/bwlimit.js';
import { CompressionPolicy } from './compress.js';

/** A sink that forwards everything to `inner` but what `writeAt` changes. */
abstract class SinkWrapper implements BlockSink {
  constructor(protected readonly inner: BlockSink) {}
  get capacity(): number {
    return this.inner.capacity;
  }
  abstract writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string>;
  hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.inner.hashAt(block, algo, signal);
  }
  get hashStream(): BlockSink['hashStream'] {
    return this.inner.hashStream?.bind(this.inner);
  }
  get unitAlgo(): ChecksumAlgo | undefined {
    return this.inner.unitAlgo;
  }
  get takesDelta(): boolean | undefined {
    return this.inner.takesDelta;
  }
  get durable(): BlockSink['durable'] {
    return this.inner.durable?.bind(this.inner);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  abort(): Promise<void> {
    return this.inner.abort();
  }
}

/**
 * `--bwlimit`: one token bucket for every channel of the run. Zero runs cost nothing (they
 * travel as a length wherever the path can), compressed parts cost what they weigh.
 */
export class LimitedSink extends SinkWrapper {
  constructor(
    inner: BlockSink,
    private readonly bucket: TokenBucket,
  ) {
    super(inner);
  }

  writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (payload.kind === 'data') return this.inner.writeAt(block, { ...payload, chunks: this.paced(payload.chunks, (c) => (isZero(c) ? 0 : c.length), signal) }, algo, signal);
    if (payload.kind === 'parts' || payload.kind === 'delta') return this.inner.writeAt(block, { ...payload, parts: this.paced(payload.parts, (p) => (p.kind === 'zero' ? 0 : p.data.length), signal) }, algo, signal);
    return this.inner.writeAt(block, payload, algo, signal);
  }

  private async *paced<T>(items: AsyncIterable<T>, size: (item: T) => number, signal: AbortSignal): AsyncGenerator<T> {
    for await (const item of items) {
      const n = size(item);
      if (n > 0) await this.bucket.take(n, signal);
      yield item;
    }
  }
}

/**
 * `--compress`: while the policy says parts pay (a link slower than gzip), whole blocks become
 * parts; otherwise they pass whole, one in a few lending a chunk to keep measuring gzip. Either
 * way the policy hears the bytes that went on the wire, to know the link's speed.
 */
export class CompressingSink extends SinkWrapper {
  constructor(
    inner: BlockSink,
    private readonly policy: CompressionPolicy,
  ) {
    super(inner);
  }

  writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (payload.kind === 'delta') {
      // A delta's raw parts are compressed as whole blocks' parts would be, while that pays.
      const onWire = (n: number) => {
        this.policy.noteWire(n);
        payload.onWire?.(n);
      };
      const parts = this.policy.wantsParts() ? this.policy.repack(payload.parts) : payload.parts;
      return this.inner.writeAt(block, { kind: 'delta', parts, onWire, onAck: payload.onAck, onZeroed: payload.onZeroed }, algo, signal);
    }
    if (payload.kind !== 'data') return this.inner.writeAt(block, payload, algo, signal);
    const onWire = (n: number) => {
      this.policy.noteWire(n);
      payload.onWire?.(n);
    };
    if (this.policy.wantsParts()) {
      const parts: AsyncIterable<BlockPart> = this.policy.parts(block.offset, payload.chunks);
      return this.inner.writeAt(block, { kind: 'parts', parts, onWire, onAck: payload.onAck, onZeroed: payload.onZeroed }, algo, signal);
    }
    return this.inner.writeAt(block, { kind: 'data', chunks: this.policy.sampled(payload.chunks), onWire, onAck: payload.onAck, onZeroed: payload.onZeroed }, algo, signal);
  }
}

/**
 * Writes only once the target's record names this run (`writing` asks for it, once, and
 * resolves when it does: until then the sink only hashes, as --skip-identical does first) and
 * while the lock is this run's: after a dropped connection they wait until it is taken back,
 * and fail (stopping the run) if it was lost.
 */
class LockedSink extends SinkWrapper {
  constructor(
    inner: BlockSink,
    private readonly lock: HeldLock,
    private readonly writing: () => Promise<void>,
  ) {
    super(inner);
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    this.inner.expectWrite?.();
    // Without the record no block may be written: a failed one stops the run (exit 4, resumable).
    await this.writing().catch((err: unknown) => {
      throw retryClassOf(err) === 'block' ? new DdtError('REMOTE_PERMANENT', `the target's record could not name this run: ${messageOf(err)}`, { cause: err }) : err;
    });
    await this.lock.held(signal);
    return this.inner.writeAt(block, payload, algo, signal);
  }
}

/** The sink as a job's options shape it: compressed where the path takes parts, then paced, writing only under the lock. */
export function shapeSink(sink: BlockSink, o: { compress: CompressMode; bwlimit?: string; takesParts: boolean; lock?: { held: HeldLock; writing: () => Promise<void> } }): BlockSink {
  let shaped = o.lock ? new LockedSink(sink, o.lock.held, o.lock.writing) : sink;
  const schedule = o.bwlimit === undefined ? undefined : parseBwLimit(o.bwlimit);
  // The bucket sees what goes on the wire: compressed parts, so it wraps inside compression.
  if (schedule) shaped = new LimitedSink(shaped, new TokenBucket(schedule));
  if (o.takesParts && o.compress !== 'none') shaped = new CompressingSink(shaped, new CompressionPolicy(o.compress));
  return shaped;
}
