import type { ProgressSnapshot } from './aggregator.js';
import { formatBytes, formatDuration, formatRate } from './format.js';
import {
  LineWriter,
  WARNING_POLL_MS,
  WarningCursor,
  every,
  type ProgressRenderer,
  type ProgressSource,
  type RendererOptions,
  type RunResult,
} from './renderer.js';

/**
 * For logs and pipes (no TTY): a line every few seconds, which reads well in a journal or CI log,
 * where a redrawn bar would be noise.
 *   ddt: 412.0 MiB / 1.0 GiB (40.2%) verified, 98.3 MiB/s, ETA 6s, blocks 6/16 verified, 2 zero, 0 retried
 */
export class PlainRenderer implements ProgressRenderer {
  private readonly out: LineWriter;
  private readonly warnings: WarningCursor;
  private readonly intervalMs: number;
  private stopTimers: Array<() => void> = [];
  private stopped = false;

  constructor(
    private readonly aggregator: ProgressSource,
    stream: NodeJS.WritableStream,
    opts: RendererOptions = {},
  ) {
    this.out = new LineWriter(stream);
    this.warnings = new WarningCursor(aggregator);
    this.intervalMs = opts.intervalMs ?? 5000;
  }

  start(): void {
    if (this.stopTimers.length > 0 || this.stopped) return;
    this.stopTimers = [
      every(this.intervalMs, () => this.tick()),
      every(Math.min(WARNING_POLL_MS, this.intervalMs), () => this.flushWarnings()),
    ];
  }

  stop(result?: RunResult): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const stop of this.stopTimers) stop();
    this.flushWarnings();
    const snap = this.aggregator.snapshot();
    // A run refused during setup has its one-line error; a progress summary would add noise.
    if (snap.phase !== 'setup') this.out.write(finalLine(snap, result));
  }

  private tick(): void {
    this.flushWarnings();
    const snap = this.aggregator.snapshot();
    // Nothing to count while connecting and probing; a `0 B / 0 B` line would only confuse.
    if (snap.phase === 'transfer') this.out.write(progressLine(snap));
  }

  private flushWarnings(): void {
    for (const message of this.warnings.take()) this.out.write(`ddt: warning: ${message}`);
  }
}

export function progressLine(s: ProgressSnapshot): string {
  return (
    `ddt: ${formatBytes(s.bytesVerified)} / ${formatBytes(s.bytesTotal)} (${s.percent.toFixed(1)}%) verified, ` +
    `${formatRate(s.rate)}, ETA ${formatDuration(s.eta)}, ${blockCounts(s)}`
  );
}

/** e.g. `ddt: done: 1.0 GiB / 1.0 GiB (100.0%) verified in 11s, 620.0 MiB on the wire, blocks 16/16 verified, …` */
export function finalLine(s: ProgressSnapshot, result?: RunResult): string {
  const ok = result?.ok ?? s.ok;
  const exitCode = result?.exitCode ?? s.exitCode;
  const outcome = ok === true ? 'done' : exitCode === null ? 'stopped' : `stopped (exit ${exitCode})`;
  return (
    `ddt: ${outcome}: ${formatBytes(s.bytesVerified)} / ${formatBytes(s.bytesTotal)} (${s.percent.toFixed(1)}%) verified ` +
    `in ${formatDuration(s.elapsed)}, ${formatBytes(s.bytesWire)} on the wire, ${blockCounts(s)}`
  );
}

function blockCounts(s: ProgressSnapshot): string {
  const b = s.blocks;
  let text = `blocks ${b.verified}/${b.total} verified, ${b.zero} zero, ${b.retried} retried`;
  // Only worth the width when they happen.
  if (b.identical > 0) text += `, ${b.identical} identical`;
  if (b.failed > 0) text += `, ${b.failed} failed`;
  return text;
}
