import type { ByteRange } from '../block/types.js';
import { mergeRanges } from '../plan/block-plan.js';
import { isProven, targetBytes, type JournalState } from './journal.js';
import { describeEnd } from './records.js';

export interface JournalStatus {
  journal: string;
  command: string;
  source: string;
  target: string;
  blocks: number;
  verified: number;
  pending: number;
  failed: number;
  states: Record<string, number>;
  badRanges: ByteRange[];
  bytesTotal: number;
  bytesVerified: number;
  /** of the verified blocks that were written: bytes made holes (or kept as zeros), zeroed by device offload, written */
  bytesHoles: number;
  bytesOffloaded: number;
  bytesWritten: number;
  checksum: string;
  blockSize: number;
  runs: number;
  finished: boolean;
  lastError: string | null;
  /** the run (1-based) whose record carries `lastError` */
  lastErrorRun: number | null;
}

/** Fold a journal into what `ddt status` reports (pure; looks only at blocks the journal names). */
export function journalStatus(state: JournalState, journal: string): JournalStatus {
  const h = state.header;
  let verified = 0;
  let failed = 0;
  let bytesVerified = 0;
  let bytesHoles = 0;
  let bytesOffloaded = 0;
  let bytesWritten = 0;
  const badRanges: ByteRange[] = [];
  for (const [i, s] of state.blocks) {
    if (isProven(s)) {
      verified++;
      const length = Math.min(h.blockSize, h.source.size - i * h.blockSize);
      bytesVerified += length;
      const t = targetBytes(length, s);
      bytesHoles += t.holes;
      bytesOffloaded += t.offloaded;
      bytesWritten += t.written;
      if (s.ranges) badRanges.push(...s.ranges);
    } else if (s.state === 'failed') failed++;
  }
  const pending = h.blocks - verified;
  return {
    journal,
    command: h.command,
    source: describeEnd(h.source),
    target: describeEnd(h.target),
    blocks: h.blocks,
    verified,
    pending,
    failed,
    states: { verified, failed, pending: pending - failed },
    // In the source's order, as the run's summary gives them: blocks are journaled as they are
    // proven, which is not always in order.
    badRanges: mergeRanges(badRanges),
    bytesTotal: h.source.size,
    bytesVerified,
    bytesHoles,
    bytesOffloaded,
    bytesWritten,
    checksum: h.checksum,
    blockSize: h.blockSize,
    runs: state.runs.filter((r) => r.event === 'start').length,
    finished: verified === h.blocks,
    lastError: state.lastError ?? null,
    lastErrorRun: state.lastErrorRun ?? null,
  };
}
