/**
 * The helper's `V` requests: many blocks hashed in one request, with their units' checksums, as
 * one ddt-hash process (or the shell tools) streams them on the remote host. Blocks are grouped
 * into runs and runs into requests; the answers are ddt-hash's (checksum/ddt-hash.ts).
 */
import type { BlockRef, UnitSpec } from '../block/types.js';
import { answerLines, runLines, unitOf } from '../checksum/ddt-hash.js';
import type { ChecksumAlgo } from '../checksum/types.js';

export { digestsOf } from '../checksum/ddt-hash.js';

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

/** `units` undefined: one line per block, its checksum only. */
export function hashRequests(blocks: BlockRef[], algo: ChecksumAlgo, units?: UnitSpec): HashRequest[] {
  const unit = unitOf(blocks, units);
  const ualgo = units?.algo ?? algo;
  const out: HashRequest[] = [];
  for (let i = 0; i < blocks.length; i += BLOCKS_PER_REQUEST) {
    const group = blocks.slice(i, i + BLOCKS_PER_REQUEST);
    const runs = runLines(group);
    out.push({ text: `V ${unit} ${runs.length} ${ualgo} ${algo}\n${runs.join('\n')}\n`, blocks: group, lines: answerLines(group, unit) });
  }
  return out;
}
