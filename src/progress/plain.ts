import type { ProgressSnapshot } from './aggregator.js';
import { formatBytes, formatDuration, formatRate } from '../format.js';
import { LineRenderer, type ProgressSource, type RendererOptions, type RunResult } from './renderer.js';

/**
 * For logs and pipes (no TTY): a line every few seconds, which reads well in a journal or CI log,
 * where a redrawn bar would be noise. What is proven comes first (scripts grep it), then what the
 * target has taken, which moves between proofs:
 *   ddt: 380.0 MiB / 1.0 GiB (37.1%) verified, 98.3 MiB/s, ETA 6s, blocks 6/16 verified, 2 zero,
 *   0 retried; 412.0 MiB at the target, 300.2 MiB on the wire, avg 95.1 MiB/s, 4s elapsed
 */
export class PlainRenderer extends LineRenderer {
  constructor(aggregator: ProgressSource, stream: NodeJS.WritableStream, opts: RendererOptions = {}) {
    super(aggregator, stream, opts, 5000, false);
  }

  protected progress(): void {
    const snap = this.aggregator.snapshot();
    // Nothing to count while connecting and probing; a `0 B / 0 B` line would only confuse.
    if (snap.phase === 'transfer') this.out.write(progressLine(snap));
  }

  protected warning(message: string): void {
    this.out.write(`ddt: warning: ${message}`);
  }

  protected last(result?: RunResult): void {
    const snap = this.aggregator.snapshot();
    // A run refused during setup has its one-line error; a progress summary would add noise.
    if (snap.phase !== 'setup') this.out.write(finalLine(snap, result));
  }
}

export function progressLine(s: ProgressSnapshot): string {
  return (
    `ddt: ${formatBytes(s.bytesVerified)} / ${formatBytes(s.bytesTotal)} (${s.percent.toFixed(1)}%) verified, ` +
    `${formatRate(s.rate)}, ETA ${formatDuration(s.eta)}, ${blockCounts(s)}; ` +
    `${formatBytes(s.bytesMoved)} at the target, ${formatBytes(s.bytesWire)} on the wire, avg ${formatRate(s.averageRate)}, ${formatDuration(s.elapsed)} elapsed`
  );
}

/** e.g. `ddt: done: 1.0 GiB / 1.0 GiB (100.0%) verified in 11s, 620.0 MiB on the wire, blocks 16/16 verified, …` */
export function finalLine(s: ProgressSnapshot, result?: RunResult): string {
  const ok = result?.ok ?? s.ok;
  const exitCode = result?.exitCode ?? s.exitCode;
  const outcome = ok === true ? 'done' : exitCode === null ? 'stopped' : `stopped (exit ${exitCode})`;
  return (
    `ddt: ${outcome}: ${formatBytes(s.bytesVerified)} / ${formatBytes(s.bytesTotal)} (${s.percent.toFixed(1)}%) verified ` +
    `in ${formatDuration(s.elapsed)} (avg ${formatRate(s.averageRate)}), ${formatBytes(s.bytesWire)} on the wire, ${blockCounts(s)}`
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
