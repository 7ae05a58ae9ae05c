import { isProven, type JournalState } from './journal.js';

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
  badRanges: { offset: number; length: number }[];
  bytesTotal: number;
  bytesVerified: number;
  checksum: string;
  blockSize: number;
  runs: number;
  finished: boolean;
  lastError: string | null;
}

/** Fold a journal into what `ddt status` reports (pure). */
export function journalStatus(state: JournalState, journal: string, describe: (end: { path: string; host?: string; user?: string }) => string): JournalStatus {
  const h = state.header;
  let verified = 0;
  let failed = 0;
  let bytesVerified = 0;
  const states: Record<string, number> = { verified: 0, failed: 0, pending: 0 };
  const badRanges: { offset: number; length: number }[] = [];
  for (let i = 0; i < h.blocks; i++) {
    const s = state.blocks.get(i);
    const length = Math.min(h.blockSize, h.source.size - i * h.blockSize);
    if (isProven(s)) {
      verified++;
      bytesVerified += length;
      states.verified++;
      if (s?.ranges) badRanges.push(...s.ranges);
    } else if (s?.state === 'failed') {
      failed++;
      states.failed++;
    } else {
      states.pending++;
    }
  }
  return {
    journal,
    command: h.command,
    source: describe(h.source),
    target: describe(h.target),
    blocks: h.blocks,
    verified,
    pending: h.blocks - verified,
    failed,
    states,
    badRanges,
    bytesTotal: h.source.size,
    bytesVerified,
    checksum: h.checksum,
    blockSize: h.blockSize,
    runs: state.runs.filter((r) => r.event === 'start').length,
    finished: verified === h.blocks,
    lastError: state.lastError ?? null,
  };
}
