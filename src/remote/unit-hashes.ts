/**
 * The helper's `V` requests: many blocks hashed in one request, with their units' checksums, as
 * one process streams them on the remote host. Blocks are grouped into runs (contiguous blocks of
 * one size, the last maybe shorter) and runs into requests; the answer lines map back to blocks.
 */
import type { BlockDigest, BlockRef, UnitSpec } from '../block/types.js';
import { isDigest, type ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';

/**
 * Blocks per request: the streaming hasher is one process per request, so this bounds the
 * processes (a 1 TiB disk of 64 MiB blocks: 16), while requests stay small enough to pipeline.
 */
const BLOCKS_PER_REQUEST = 1024;

/** One `V` request: its text (header and run lines), its blocks, and its count of answer lines. */
export interface HashRequest {
  text: string;
  blocks: BlockRef[];
  lines: number;
}

/** Lines a block gets: one per unit where it spans more than one, then its own. */
function linesOf(length: number, unit: number): number {
  return length > unit ? Math.ceil(length / unit) + 1 : 1;
}

/** `units` undefined: one line per block, its checksum only. */
export function hashRequests(blocks: BlockRef[], algo: ChecksumAlgo, units?: UnitSpec): HashRequest[] {
  const unit = units?.unit ?? Math.max(1, ...blocks.map((b) => b.length));
  const ualgo = units?.algo ?? algo;
  const out: HashRequest[] = [];
  for (let i = 0; i < blocks.length; i += BLOCKS_PER_REQUEST) {
    const group = blocks.slice(i, i + BLOCKS_PER_REQUEST);
    const runs: string[] = [];
    let run: { offset: number; length: number; block: number } | undefined;
    const flush = () => run && runs.push(`${run.offset} ${run.length} ${run.block}`);
    for (const b of group) {
      // A block joins the run when it starts where the run ends and the run's blocks so far are
      // all full-sized; a shorter block can only be a run's last.
      if (run && run.offset + run.length === b.offset && run.length % run.block === 0 && b.length <= run.block) run.length += b.length;
      else {
        flush();
        run = { offset: b.offset, length: b.length, block: b.length };
      }
    }
    flush();
    const lines = group.reduce((n, b) => n + linesOf(b.length, unit), 0);
    out.push({ text: `V ${unit} ${runs.length} ${ualgo} ${algo}\n${runs.join('\n')}\n`, blocks: group, lines });
  }
  return out;
}

/**
 * The digests of a request's blocks from its answer lines, in order. A unit or block the helper
 * could not read (`ERR`) leaves that checksum undefined: the block is then simply sent.
 */
export async function* digestsOf(req: HashRequest, lines: AsyncIterator<string>, algo: ChecksumAlgo, units?: UnitSpec): AsyncGenerator<BlockDigest> {
  const unit = units?.unit ?? Infinity;
  const next = async (want: ChecksumAlgo): Promise<string | undefined> => {
    const r = await lines.next();
    if (r.done) throw new DdtError('REMOTE_PROTOCOL', 'helper: checksum stream ended early');
    if (r.value.startsWith('ERR ')) return undefined;
    const hex = r.value.startsWith('OK ') ? r.value.slice(3).trim() : '';
    if (!isDigest(want, hex)) throw new DdtError('REMOTE_PROTOCOL', `helper: bad checksum line ${JSON.stringify(r.value.slice(0, 200))}`);
    return hex;
  };
  for (const block of req.blocks) {
    let unitSums: (string | undefined)[] | undefined;
    if (units && block.length > unit) {
      unitSums = [];
      for (let at = 0; at < block.length; at += unit) unitSums.push(await next(units.algo));
    }
    const checksum = await next(algo);
    const known = unitSums?.every((u) => u !== undefined) ? (unitSums as string[]) : undefined;
    yield { block, checksum, ...(known && { units: known }) };
  }
}
