/**
 * `--progress json`: one JSON object per line, for scripts and GUIs. Event types:
 *
 *   {"type":"progress", ...snapshot, "time"}   every intervalMs (default 1 s, DESIGN §2 requires
 *                                              ≥ 1 per second while working), and once at start
 *   {"type":"warning", "message", "time"}      as soon as a warning arrives (polled every 250 ms)
 *   {"type":"done", ...snapshot, "ok", "exitCode", "time"}   exactly once, on stop
 *
 * `...snapshot` is every `ProgressSnapshot` field except `warnings` (those arrive as their own
 * events): phase, command, source, target, engine, blockSize, blocks{total, read, sent, verified,
 * zero, identical, retried, failed}, bytesTotal, bytesVerified, bytesWire, percent, rate and
 * wireRate (bytes/s, ~10 s window), eta (s or null), elapsed (s), connections{n: bytes/s},
 * warningCount, done, ok, exitCode. `time` is ISO 8601 UTC.
 *
 * Raw progress events are deliberately not echoed: a line per block state change would flood the
 * consumer on fast links and say nothing a snapshot does not.
 */
import type { ProgressSnapshot } from './aggregator.js';
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

export class JsonRenderer implements ProgressRenderer {
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
    this.intervalMs = opts.intervalMs ?? 1000;
  }

  start(): void {
    if (this.stopTimers.length > 0 || this.stopped) return;
    this.tick();
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
    this.emit('done', { ...fields(snap), ok: result?.ok ?? snap.ok ?? false, exitCode: result?.exitCode ?? snap.exitCode });
  }

  private tick(): void {
    // Warnings first, so a consumer sees them before the counters they explain.
    this.flushWarnings();
    this.emit('progress', fields(this.aggregator.snapshot()));
  }

  private flushWarnings(): void {
    for (const message of this.warnings.take()) this.emit('warning', { message });
  }

  private emit(type: 'progress' | 'warning' | 'done', body: object): void {
    this.out.write(JSON.stringify({ type, ...body, time: new Date().toISOString() }));
  }
}

function fields(snap: ProgressSnapshot): Omit<ProgressSnapshot, 'warnings'> {
  const { warnings: _sentSeparately, ...rest } = snap;
  return rest;
}
