/**
 * A source with a GPT copied onto a larger target: the backup header and partition array stay
 * where the source ended, so the summary says how to move them; with `--fix-gpt` ddt moves them
 * itself once every block is proven. It writes the structures through the run's own sink, so
 * they are written, read back and compared like any block, on every data path and target kind,
 * with nothing more on the remote host than the helper already needs (no sfdisk or sgdisk
 * there: Debian's fdisk package is not essential, busybox has neither).
 */
import { backupAtEnd, entriesLength, findGpt, GPT_PROBE_BYTES, relocateGpt, type GptHeader } from '../block/gpt.js';
import type { BlockRef, BlockSink, BlockSource } from '../block/types.js';
import { checksumOf } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { describeEnd, type JobHeader } from '../journal/records.js';

export interface GptCheck {
  /** what is wrong with the target's GPT and how to fix it by hand */
  warning?: string;
  /** what `--fix-gpt` did */
  fixed?: string;
}

/**
 * Look at the source's GPT after a complete run and, with `fix`, relocate its backup on the
 * target. `firstIndex`: block indices from here on are free (the writes are not plan blocks).
 * Throws when a relocation was asked for and failed: the target holds every block, but its
 * backup GPT is not where it belongs.
 */
export async function checkGpt(header: JobHeader, ends: { source: BlockSource; sink: BlockSink }, o: { fix: boolean; firstIndex: number; signal: AbortSignal }): Promise<GptCheck> {
  const sizes = { source: header.source.size, target: header.target.size };
  if (sizes.target <= sizes.source || sizes.source < GPT_PROBE_BYTES) return {};
  const algo = header.checksum;
  const head = await readRange(ends.source, { index: o.firstIndex, offset: 0, length: GPT_PROBE_BYTES }, algo);
  const g = findGpt(head);
  if (!g || !backupAtEnd(g, sizes.source)) return {};
  if (!o.fix) return { warning: manualFix(header, g) };
  const entries = await readRange(ends.source, { index: o.firstIndex, offset: Number(g.entriesLba) * g.sectorSize, length: entriesLength(g) }, algo);
  const writes = relocateGpt(g, head, entries, sizes);
  // The new backup first, the primary that points at it last: a run killed in between leaves
  // the old, consistent GPT (the new backup is not referenced yet), never a dangling pointer.
  for (const [k, w] of [...writes.entries()].reverse()) {
    const ref: BlockRef = { index: o.firstIndex + 1 + k, offset: w.offset, length: w.length };
    const sum = await ends.sink.writeAt(ref, { kind: 'data', chunks: once(w.data) }, algo, o.signal);
    if (sum !== checksumOf(algo, w.data)) throw new Error(`the relocated GPT at bytes ${w.offset}..${w.offset + w.length} read back differently`);
    await ends.sink.durable?.(ref, o.signal);
  }
  const backup = writes[1]!;
  const ss = g.sectorSize;
  return {
    fixed: `GPT: backup header moved to the end of the target (sector ${(backup.offset + backup.length) / ss - 1}), primary header and protective MBR updated; sectors 0-1 and ${backup.offset / ss}-${(backup.offset + backup.length) / ss - 1} written and read back`,
  };
}

/** What to run by hand: sgdisk or sfdisk on the target's host. */
export function manualFix(header: JobHeader, g: GptHeader): string {
  const t = header.target.path;
  const r = header.target.remote;
  const host = r ? ` on ${r.user ? `${r.user}@` : ''}${r.hosts[0] ?? ''}` : '';
  return (
    `the source has a GPT and the target is larger: the backup GPT header stays at sector ${g.alternateLba}, not at the end of ${describeEnd(header.target)}; ` +
    `move it there with \`sgdisk -e ${t}\` or \`sfdisk --relocate gpt-bak-std ${t}\`${host}, or pass --fix-gpt (ddt then does it once every block is proven)`
  );
}

/** Exactly `ref`'s bytes from the source (a copy: sources reuse their read buffers). */
async function readRange(source: BlockSource, ref: BlockRef, algo: ChecksumAlgo): Promise<Buffer> {
  const opened = await source.openBlock(ref, algo);
  const out = Buffer.alloc(ref.length);
  if (opened.payload.kind === 'data') {
    let at = 0;
    for await (const chunk of opened.payload.chunks) at += chunk.copy(out, at);
  } else if (opened.payload.kind === 'parts') {
    throw new Error('a source gives whole ranges, not parts');
  }
  await opened.checksum;
  return out;
}

async function* once(data: Buffer): AsyncGenerator<Buffer> {
  yield data;
}
