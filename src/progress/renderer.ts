import type { ProgressAggregator } from './aggregator.js';

/** How the run ended, as the CLI will exit. */
export interface RunResult {
  ok: boolean;
  exitCode: number;
}

/**
 * Shows an aggregator's progress on a stream. Renderers read snapshots on their own ticker,
 * so a slow terminal never slows the data path.
 */
export interface ProgressRenderer {
  /** Begin ticking. Idempotent. */
  start(): void;
  /**
   * Stop ticking and write the final state. `result` defaults to the aggregator's `done` event.
   * Idempotent: the CLI may call it from both its finally block and a signal handler.
   */
  stop(result?: RunResult): void;
}

export interface RendererOptions {
  /** how often to write a progress line / redraw */
  intervalMs?: number;
  /** warnings the user has already seen (written before the renderer began): not repeated */
  warningsSeen?: number;
}

/** The progress aggregator a renderer reads from (its public surface only). */
export type ProgressSource = Pick<ProgressAggregator, 'snapshot' | 'warningCount' | 'warningsSince'>;

/** Warnings should show soon after they arrive, even when progress lines are seconds apart. */
export const WARNING_POLL_MS = 250;

/** setInterval that never keeps the process alive on its own: a forgotten stop() must not hang the CLI. */
export function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Writes lines to a stream, and goes quiet after the stream fails (e.g. EPIPE when stderr is
 * piped into `head`): progress is a courtesy and must never crash or stop a transfer.
 */
export class LineWriter {
  private broken = false;

  constructor(private readonly stream: NodeJS.WritableStream) {
    stream.on('error', () => {
      this.broken = true;
    });
  }

  write(line: string): void {
    if (this.broken) return;
    try {
      this.stream.write(`${line}\n`);
    } catch {
      this.broken = true;
    }
  }
}

/** Hands out each warning once: renderers remember how many they already showed. */
export class WarningCursor {
  constructor(
    private readonly source: ProgressSource,
    private seen = 0,
  ) {}

  take(): string[] {
    const total = this.source.warningCount;
    if (total === this.seen) return [];
    const fresh = this.source.warningsSince(this.seen);
    this.seen = total;
    return fresh;
  }
}

/** The `none` renderer. */
export class NoopRenderer implements ProgressRenderer {
  start(): void {}
  stop(): void {}
}

/**
 * A renderer that writes whole lines on two tickers: its progress line every `intervalMs`,
 * warnings as they arrive (polled every WARNING_POLL_MS), and a last line on stop. Subclasses
 * say what the lines are.
 */
export abstract class LineRenderer implements ProgressRenderer {
  protected readonly out: LineWriter;
  private readonly warnings: WarningCursor;
  private readonly intervalMs: number;
  private stopTimers: Array<() => void> = [];
  private stopped = false;

  constructor(
    protected readonly aggregator: ProgressSource,
    stream: NodeJS.WritableStream,
    opts: RendererOptions,
    defaultIntervalMs: number,
    /** Write a progress line at start too, not only after the first interval. */
    private readonly tickAtStart: boolean,
  ) {
    this.out = new LineWriter(stream);
    this.warnings = new WarningCursor(aggregator, opts.warningsSeen);
    this.intervalMs = opts.intervalMs ?? defaultIntervalMs;
  }

  start(): void {
    if (this.stopTimers.length > 0 || this.stopped) return;
    if (this.tickAtStart) this.tick();
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
    this.last(result);
  }

  /** Warnings first, so a reader sees them before the counters they explain. */
  private tick(): void {
    this.flushWarnings();
    this.progress();
  }

  private flushWarnings(): void {
    for (const message of this.warnings.take()) this.warning(message);
  }

  protected abstract progress(): void;
  protected abstract warning(message: string): void;
  protected abstract last(result?: RunResult): void;
}
