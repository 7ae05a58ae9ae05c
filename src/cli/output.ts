import { formatBytes, formatDuration, formatRate } from '../format.js';
import type { JobSummary } from '../engine/summary.js';

/** stdout carries results (human lines or one JSON object); stderr carries progress and errors. */
export function printJson(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** This run's own figures, which the whole-job summary cannot tell (resume). */
export interface RunFigures {
  /** bytes proven during this run (zero and identical blocks included) */
  bytesProven: number;
}

/**
 * The run's payoff: average rate of proven bytes, and how much of them never crossed the wire
 * (zero blocks, identical blocks, compression). Without run figures, a fresh run is assumed.
 */
export function throughputOf(s: JobSummary, run?: RunFigures): { bytesProven: number; bytesPerSecond: number; savedBytes: number; savings: number } {
  const bytesProven = run?.bytesProven ?? (s.verified === s.blocks ? s.bytesTotal : 0);
  const bytesPerSecond = s.seconds > 0 ? Math.round(bytesProven / s.seconds) : 0;
  const savedBytes = Math.max(0, bytesProven - s.bytesOnWire);
  const savings = bytesProven > 0 ? Math.round((savedBytes / bytesProven) * 1000) / 1000 : 0;
  return { bytesProven, bytesPerSecond, savedBytes, savings };
}

export function printSummary(s: JobSummary, json: boolean, run?: RunFigures): void {
  const t = throughputOf(s, run);
  if (json) return printJson({ ...s, ...t });
  const lines = [
    `${s.ok ? 'done' : 'not finished'}: ${s.verified}/${s.blocks} blocks verified (${s.checksum}), ${formatBytes(s.bytesTotal)} ${s.source} -> ${s.target}`,
    // Savings: zero blocks travel as a command, identical ones not at all, the rest maybe compressed.
    `  ${formatBytes(t.bytesProven)} proven in ${formatDuration(s.seconds)} (${formatRate(t.bytesPerSecond)}), ${formatBytes(s.bytesOnWire)} on the wire` +
      (t.savedBytes > 0 ? ` (${(t.savings * 100).toFixed(1)}% less than the data)` : ''),
    `  ${s.sent} blocks written, ${s.zeroBlocks} zero, ${s.identicalBlocks} identical, ${s.retransmitted} re-sent, ${s.failed} failed`,
    `  target: ${zeroLine(s)}`,
    `  journal: ${s.journal}`,
  ];
  for (const w of s.warnings ?? []) lines.push(`  warning: ${w}`);
  if (s.gptFixed) lines.push(`  ${s.gptFixed}`);
  if (s.error) lines.push(`  ${s.error}`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** What the writes did on the target: bytes written, made holes, zeroed by the device. */
export function zeroLine(s: { bytesWritten: number; bytesHoles: number; bytesOffloaded: number }): string {
  return `${formatBytes(s.bytesWritten)} written, ${formatBytes(s.bytesHoles)} holes, ${formatBytes(s.bytesOffloaded)} zeroed by the device`;
}
