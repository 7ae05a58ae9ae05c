import { formatBytes, formatDuration } from '../progress/format.js';
import type { JobSummary } from '../engine/summary.js';

/** stdout carries results (human lines or one JSON object); stderr carries progress and errors. */
export function printJson(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

export function printSummary(s: JobSummary, json: boolean): void {
  if (json) return printJson(s);
  const lines = [
    `${s.ok ? 'done' : 'not finished'}: ${s.verified}/${s.blocks} blocks verified (${s.checksum}), ${formatBytes(s.bytesTotal)} ${s.source} -> ${s.target}`,
    `  sent ${s.sent} blocks (${formatBytes(s.bytesOnWire)} on the wire), ${s.zeroBlocks} zero, ${s.identicalBlocks} identical, ${s.retransmitted} re-sent, ${s.failed} failed, in ${formatDuration(s.seconds)}`,
    `  journal: ${s.journal}`,
  ];
  if (s.error) lines.push(`  ${s.error}`);
  process.stdout.write(lines.join('\n') + '\n');
}
