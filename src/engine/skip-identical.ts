/**
 * `--skip-identical`: what of a block must go to the target. Both ends' checksums of the block
 * and of its units (sub-blocks) are compared: equal block checksums prove the block without
 * sending it (the same proof as a read-back); otherwise only the units whose checksums differ
 * are sent, and the block is proven, like any other, by the checksum of the whole block read
 * back afterwards. The target's checksums (and a remote source's) stream ahead of the sender.
 */
import type { BlockRef, BlockSink, BlockSource, ByteRange, UnitSpec } from '../block/types.js';
import { differingUnits } from '../checksum/block-digest.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { HashAhead, oneByOne, streamPerBlock } from './hash-ahead.js';

/** The unit of sub-block comparison: the read chunk, so a changed MiB costs about a MiB. */
export const UNIT = 1 << 20;

/** Units of `algo` where some block spans more than one. */
export function unitsOf(blocks: BlockRef[], algo: ChecksumAlgo): UnitSpec | undefined {
  return blocks.some((b) => b.length > UNIT) ? { unit: UNIT, algo } : undefined;
}

/** A started stream of one end's digests, handed to the one reader that asks for the same thing. */
export interface HashedAhead {
  take(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): HashAhead | undefined;
  /** Stop hashing; idempotent. */
  end(): void;
}

/** Both ends' streams started before the pipeline, where they were. */
export interface EarlyEnds {
  source?: HashedAhead;
  target?: HashedAhead;
}

export type Comparison =
  /** already on the target */
  | { kind: 'identical'; source: string; target: string; badRanges: ByteRange[] }
  /** only `ranges` differ (`covered` bytes); `source` is the whole block's checksum */
  | { kind: 'delta'; source: string; badRanges: ByteRange[]; ranges: ByteRange[]; covered: number }
  /** send the whole block */
  | { kind: 'send' };

export class SkipIdentical {
  private readonly target: HashAhead;
  private readonly source?: HashAhead;
  readonly units?: UnitSpec;

  constructor(
    blocks: BlockRef[],
    private readonly reader: BlockSource,
    private readonly sink: BlockSink,
    private readonly algo: ChecksumAlgo,
    signal: AbortSignal,
    /** Streams started before the pipeline (a new job's); taken where they hash what is asked here. */
    ahead: EarlyEnds = {},
  ) {
    // Units only where some block spans more than one, and only where the sink takes the parts
    // and the source can read them; their algo is what the remote end hashes fastest.
    const delta = sink.takesDelta === true && reader.openRanges !== undefined;
    this.units = delta ? unitsOf(blocks, sink.unitAlgo ?? reader.unitAlgo ?? algo) : undefined;
    // A stream holds one of an end's workers while it runs ahead: with a single worker, the
    // blocks that must be sent would wait for it forever, so such an end gets one stream per
    // block (its units too). An early target stream runs on a worker of its own, not the sink's.
    const stream = sink.hashStream?.bind(sink);
    const hashes = () => (!stream ? oneByOne(blocks, (b) => sink.hashAt(b, algo, signal)) : sink.capacity > 1 ? stream(blocks, algo, signal, this.units) : streamPerBlock(blocks, (one) => stream(one, algo, signal, this.units)));
    this.target = ahead.target?.take(blocks, algo, signal, this.units) ?? new HashAhead(hashes(), 'target');
    if (reader.hashStream && reader.capacity > 1) {
      this.source = ahead.source?.take(blocks, algo, signal, this.units) ?? new HashAhead(reader.hashStream(blocks, algo, signal, this.units), 'source');
    } else ahead.source?.end();
  }

  async compare(block: BlockRef): Promise<Comparison> {
    const [src, tgt] = await Promise.all([this.sourceDigest(block), this.target.get(block.index)]);
    if (!src || tgt?.checksum === undefined) return { kind: 'send' };
    if (src.checksum === tgt.checksum) return { kind: 'identical', source: src.checksum, target: tgt.checksum, badRanges: src.badRanges };
    // An all-zero block goes as one command anyway; without both ends' units nothing is known.
    if (src.zero || !this.units || !src.units || !tgt.units) return { kind: 'send' };
    const ranges = differingUnits(block, this.units.unit, src.units, tgt.units);
    // Every unit differs (or, by a unit checksum collision, none): the whole block, one request.
    const covered = ranges.reduce((n, r) => n + r.length, 0);
    if (covered === 0 || covered === block.length) return { kind: 'send' };
    return { kind: 'delta', source: src.checksum, badRanges: src.badRanges, ranges, covered };
  }

  private async sourceDigest(block: BlockRef): Promise<{ checksum: string; units?: string[]; badRanges: ByteRange[]; zero?: boolean } | undefined> {
    if (!this.source) return this.reader.hashBlock(block, this.algo, this.units);
    const d = await this.source.get(block.index);
    return d?.checksum === undefined ? undefined : { checksum: d.checksum, units: d.units, badRanges: [] };
  }
}
