import cliProgress from 'cli-progress';
import { STALL_AFTER_S, type ProgressSnapshot } from './aggregator.js';
import { formatBytes, formatDuration, formatRate } from '../format.js';
import {
  WarningCursor,
  every,
  type ProgressRenderer,
  type ProgressSource,
  type RendererOptions,
  type RunResult,
} from './renderer.js';

/**
 * Live display for a terminal, drawn by cli-progress (lines redrawn in place, each fits 80 columns):
 *   send [=====-----]  40.2%  412.0 MiB / 1.0 GiB   98.3 MiB/s  ETA 6s
 *   proven 380.0 MiB (37.1%), 300.2 MiB on the wire, avg 95.1 MiB/s, 4s elapsed
 *   blocks 6/16 verified, 2 zero, 0 identical, 0 retried, 0 failed
 *   connections #0 50.1 MiB/s, #1 48.2 MiB/s          (once a connection has carried data)
 * The bar is what the target has taken (it moves with the bytes), the second line what is
 * proven. Warnings are logged above the bars so they stay in the scrollback.
 */
export class TtyRenderer implements ProgressRenderer {
  private readonly multi: cliProgress.MultiBar;
  private readonly warnings: WarningCursor;
  private readonly intervalMs: number;
  private bar: cliProgress.SingleBar | null = null;
  private proven: cliProgress.SingleBar | null = null;
  private details: cliProgress.SingleBar | null = null;
  private connections: cliProgress.SingleBar | null = null;
  private stopTicker: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly aggregator: ProgressSource,
    stream: NodeJS.WritableStream,
    opts: RendererOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 250;
    this.warnings = new WarningCursor(aggregator, opts.warningsSeen);
    this.multi = new cliProgress.MultiBar({
      stream,
      fps: 1000 / this.intervalMs,
      // Forced `--progress tty` into a pipe still shows something, at log-friendly spacing.
      noTTYOutput: true,
      notTTYSchedule: Math.max(this.intervalMs, 5000),
      // The CLI owns SIGINT/SIGTERM (journal first, then exit 130) and calls stop() itself.
      gracefulExit: false,
      // Trim lines to the terminal width rather than switching auto-wrap off: nothing to restore
      // if the process dies before stop().
      linewrap: true,
      emptyOnZero: true,
      // cli-progress skips lines whose text did not change; after a warning is logged above, the
      // bars move down a line and a skipped one would show stale text. Three lines are cheap.
      forceRedraw: true,
      // The text around the bar takes up to ~70 columns; the bar gets the rest, so the line fits.
      barsize: Math.max(10, Math.min(40, ((stream as { columns?: number }).columns ?? 80) - 70)),
      // Payload names must not clash with cli-progress's own tokens (total, value, eta, …), which win.
      format: '{label} [{bar}] {pct}%  {doneBytes} / {totalBytes}  {rateText}  ETA {etaText}',
    });
    // cli-progress keeps its redraw timer referenced; like our own ticker it must not hold the
    // process open if stop() is never reached. `timer` is internal, hence the narrow cast.
    const unref = () => (this.multi as unknown as { timer?: NodeJS.Timeout | null }).timer?.unref?.();
    this.multi.on('start', unref);
    this.multi.on('update-post', unref);
  }

  start(): void {
    if (this.bar || this.stopped) return;
    const snap = this.aggregator.snapshot();
    this.bar = this.multi.create(snap.bytesTotal, snap.bytesMoved, barPayload(snap));
    this.proven = this.multi.create(1, 0, { line: provenLine(snap) }, TEXT_LINE);
    this.details = this.multi.create(1, 0, { line: blocksLine(snap) }, TEXT_LINE);
    this.stopTicker = every(this.intervalMs, () => this.tick());
  }

  /** The outcome is the CLI's to report (it prints the error or summary); the bars show the final counts. */
  stop(_result?: RunResult): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopTicker?.();
    if (!this.bar) return;
    this.tick();
    // stop() renders the bars but does not flush logged lines; update() does.
    this.multi.update();
    this.multi.stop();
  }

  private tick(): void {
    for (const message of this.warnings.take()) this.multi.log(`ddt: warning: ${message}\n`);
    const snap = this.aggregator.snapshot();
    if (!this.bar || !this.details) return;
    if (this.bar.getTotal() !== snap.bytesTotal) this.bar.setTotal(snap.bytesTotal);
    this.bar.update(snap.bytesMoved, barPayload(snap));
    this.proven?.update(0, { line: provenLine(snap) });
    this.details.update(0, { line: blocksLine(snap) });
    const conns = connectionsLine(snap);
    // Created on first use: a local copy has no connections, and an empty line would be noise.
    if (conns && !this.connections) this.connections = this.multi.create(1, 0, { line: conns }, TEXT_LINE);
    else if (conns) this.connections?.update(0, { line: conns });
  }
}

function barPayload(s: ProgressSnapshot): Record<string, string> {
  return {
    label: s.command || 'ddt',
    pct: s.percentMoved.toFixed(1).padStart(5),
    doneBytes: formatBytes(s.bytesMoved),
    totalBytes: formatBytes(s.bytesTotal),
    rateText: formatRate(s.rate).padStart(11),
    etaText: s.phase === 'setup' ? 'connecting' : s.idle >= STALL_AFTER_S ? `? (stalled ${formatDuration(s.idle)})` : formatDuration(s.eta),
  };
}

function provenLine(s: ProgressSnapshot): string {
  return `proven ${formatBytes(s.bytesVerified)} (${s.percent.toFixed(1)}%), ${formatBytes(s.bytesWire)} on the wire, avg ${formatRate(s.averageRate)}, ${formatDuration(s.elapsed)} elapsed`;
}

/** A bar without a bar: cli-progress's way of redrawing a line of text in place. */
const TEXT_LINE = { format: '{line}' };

function blocksLine(s: ProgressSnapshot): string {
  const b = s.blocks;
  return `blocks ${b.verified}/${b.total} verified, ${b.zero} zero, ${b.identical} identical, ${b.retried} retried, ${b.failed} failed`;
}

function connectionsLine(s: ProgressSnapshot): string {
  const conns = Object.entries(s.connections).map(([id, rate]) => `#${id} ${formatRate(rate)}`);
  return conns.length > 0 ? `connections ${conns.join(', ')}` : '';
}
