/**
 * `--progress json`: one JSON object per line, for scripts and GUIs. Event types:
 *
 *   {"type":"progress", ...snapshot, "time"}   every intervalMs (default 1 s: scripts rely on
 *                                              ≥ 1 per second while working), and once at start
 *   {"type":"warning", "message", "time"}      as soon as a warning arrives (polled every 250 ms)
 *   {"type":"done", ...snapshot, "ok", "exitCode", "time"}   exactly once, on stop
 *
 * `...snapshot` is every `ProgressSnapshot` field except `warnings` (those arrive as their own
 * events): phase, command, source, target, engine, blockSize, blocks{total, read, sent, verified,
 * zero, identical, retried, failed}, bytesTotal, bytesVerified (proven), bytesAcked (taken by
 * the target this run), bytesMoved (proven + taken of unproven blocks), bytesWire (payload on
 * the link this run), percent (proven), percentMoved, rate and wireRate (bytes/s, ~10 s
 * window), averageRate (bytes/s, whole run), eta (s or null), elapsed (s), idle (s since the
 * target last took anything), connections{n: bytes/s}, warningCount, done, ok, exitCode.
 * `time` is ISO 8601 UTC. The byte counts move as the bytes go, not only when a block is proven.
 *
 * Raw progress events are deliberately not echoed: a line per block state change would flood the
 * consumer on fast links and say nothing a snapshot does not.
 */
import type { ProgressSnapshot } from './aggregator.js';
import { LineRenderer, type ProgressSource, type RendererOptions, type RunResult } from './renderer.js';

export class JsonRenderer extends LineRenderer {
  constructor(aggregator: ProgressSource, stream: NodeJS.WritableStream, opts: RendererOptions = {}) {
    super(aggregator, stream, opts, 1000, true);
  }

  protected progress(): void {
    this.emit('progress', fields(this.aggregator.snapshot()));
  }

  protected warning(message: string): void {
    this.emit('warning', { message });
  }

  protected last(result?: RunResult): void {
    const snap = this.aggregator.snapshot();
    this.emit('done', { ...fields(snap), ok: result?.ok ?? snap.ok ?? false, exitCode: result?.exitCode ?? snap.exitCode });
  }

  private emit(type: 'progress' | 'warning' | 'done', body: object): void {
    this.out.write(JSON.stringify({ type, ...body, time: new Date().toISOString() }));
  }
}

function fields(snap: ProgressSnapshot): Omit<ProgressSnapshot, 'warnings'> {
  const { warnings: _sentSeparately, ...rest } = snap;
  return rest;
}
