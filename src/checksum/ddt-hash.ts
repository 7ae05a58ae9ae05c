/**
 * ddt-hash, the streaming hasher in C (native/hasher): where its builds are, what it reads on
 * stdin (runs of blocks), and its answers as digests. The same program hashes a remote end (run
 * by the helper's `V`) and a local one (run by this process).
 */
import { DdtError } from '../errors.js';
import { isDigest, type ChecksumAlgo } from './types.js';

/** The build for `arch` (`uname -m`): dist/native/ddt-hash-ARCH, from src/checksum (tsx) and from the bundle in dist/cli alike. */
export function hasherBuild(arch: string): URL {
  return new URL(`../../dist/native/ddt-hash-${arch}`, import.meta.url);
}

interface Range {
  offset: number;
  length: number;
}

/** Lines a block gets: one per unit where it spans more than one, then its own. */
function linesOf(length: number, unit: number): number {
  return length > unit ? Math.ceil(length / unit) + 1 : 1;
}

/** Answer lines for `blocks` with units of `unit` bytes. */
export function answerLines(blocks: Range[], unit: number): number {
  return blocks.reduce((n, b) => n + linesOf(b.length, unit), 0);
}

/**
 * ddt-hash's unit for `blocks`: `units`' where given, else the longest block (one line per
 * block, its checksum only).
 */
export function unitOf(blocks: Range[], units?: { unit: number }): number {
  return units?.unit ?? blocks.reduce((m, b) => Math.max(m, b.length), 1); // no spread: a big disk has too many blocks for one call
}

/** `OFFSET LENGTH BLOCK` lines: runs of contiguous blocks of one size. */
export function runLines(blocks: Range[]): string[] {
  const runs: string[] = [];
  let run: { offset: number; length: number; block: number } | undefined;
  const flush = () => run && runs.push(`${run.offset} ${run.length} ${run.block}`);
  for (const b of blocks) {
    // A block joins the run when it starts where the run ends and the run's blocks so far are
    // all full-sized; a shorter block can only be a run's last.
    if (run && run.offset + run.length === b.offset && run.length % run.block === 0 && b.length <= run.block) run.length += b.length;
    else {
      flush();
      run = { offset: b.offset, length: b.length, block: b.length };
    }
  }
  flush();
  return runs;
}

/**
 * The digests of `blocks` from ddt-hash's answer lines, in order. A unit or block it could not
 * read (`ERR`) leaves that checksum out: the block is then simply sent.
 */
export async function* digestsOf<B extends Range>(
  blocks: B[],
  lines: AsyncIterator<string>,
  algo: ChecksumAlgo,
  units?: { unit: number; algo: ChecksumAlgo },
): AsyncGenerator<{ block: B; checksum?: string; units?: string[] }> {
  const unit = units?.unit ?? Infinity;
  const next = async (want: ChecksumAlgo): Promise<string | undefined> => {
    const r = await lines.next();
    if (r.done) throw new DdtError('REMOTE_PROTOCOL', 'ddt-hash: checksum stream ended early');
    if (r.value.startsWith('ERR ')) return undefined;
    const hex = r.value.startsWith('OK ') ? r.value.slice(3).trim() : '';
    if (!isDigest(want, hex)) throw new DdtError('REMOTE_PROTOCOL', `ddt-hash: bad checksum line ${JSON.stringify(r.value.slice(0, 200))}`);
    return hex;
  };
  for (const block of blocks) {
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
