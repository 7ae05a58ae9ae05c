import type { BlockEventState, ProgressEvent } from './events.js';
import { InFlight } from './in-flight.js';
import { RateWindow } from './rate.js';

/** Blocks per state. `verified` includes `zero` and `identical` blocks and blocks proven by an earlier run. */
export interface BlockCounts {
  total: number;
  read: number;
  sent: number;
  verified: number;
  zero: number;
  identical: number;
  retried: number;
  failed: number;
}

/** `setup` until the `start` event (connecting, probing), `transfer` until `done`. */
export type ProgressPhase = 'setup' | 'transfer' | 'done';

/** A plain, JSON-serialisable copy of the counters at one instant. */
export interface ProgressSnapshot {
  phase: ProgressPhase;
  command: string;
  source: string;
  target: string;
  engine: string;
  blockSize: number;
  blocks: BlockCounts;
  bytesTotal: number;
  /** bytes of verified blocks, including those proven by an earlier run (resume) */
  bytesVerified: number;
  /** block bytes the target has taken this run, as they go (a re-sent block counts again) */
  bytesAcked: number;
  /** where the job stands: bytesVerified plus what the target has taken of unproven blocks */
  bytesMoved: number;
  /** block payload bytes put on the link this run (after compression), as they go */
  bytesWire: number;
  /** bytesVerified / bytesTotal in percent, floored to 0.1 so 100 means really done */
  percent: number;
  /** bytesMoved / bytesTotal in percent, floored to 0.1 */
  percentMoved: number;
  /**
   * bytes per second the job moved over the last ~10 s (current speed, not the run's average):
   * bytes the target took, and blocks proven without bytes (zero, identical)
   */
  rate: number;
  /** the same over the whole run */
  averageRate: number;
  /** wire payload bytes per second over the last ~10 s */
  wireRate: number;
  /** seconds until bytesMoved reaches bytesTotal at the current rate; null when the rate is 0 */
  eta: number | null;
  /** seconds since the run started (frozen at `done`) */
  elapsed: number;
  /** seconds since the job last moved (0 outside the transfer) */
  idle: number;
  /** wire payload bytes per second per connection (0-based), over the last ~10 s */
  connections: Record<number, number>;
  /** most recent warnings (at most MAX_WARNINGS kept) */
  warnings: string[];
  /** all warnings seen, including those no longer kept */
  warningCount: number;
  done: boolean;
  /** from the `done` event; null before it */
  ok: boolean | null;
  exitCode: number | null;
}

export interface AggregatorOptions {
  /** clock in ms (tests inject one); default Date.now */
  now?: () => number;
}

/**
 * Seconds without the target taking anything after which the run counts as stalled: longer than
 * a block's flush and read-back on a slow disk, far shorter than a reconnect timeout.
 */
export const STALL_AFTER_S = 15;

/** Warnings are rare, but `--noerror` on a dying disk can produce many: keep memory bounded. */
export const MAX_WARNINGS = 100;

/**
 * Folds progress events into counters. O(1) per event and no timers, so it can sit on the data
 * path as a listener; renderers call `snapshot()` from their own tickers.
 *
 * Counts are of events: the engine emits `verified`/`zero`/`identical` once per proven block,
 * while `read`, `sent` and `retry` count again when a block is re-sent.
 */
export class ProgressAggregator {
  private readonly clock: () => number;
  private phase: ProgressPhase = 'setup';
  private command = '';
  private source = '';
  private target = '';
  private engine = '';
  private blockSize = 0;
  private bytesTotal = 0;
  private bytesVerified = 0;
  private bytesAcked = 0;
  private bytesWire = 0;
  /** everything this run moved (bytes taken, blocks proven without bytes): the average's numerator */
  private bytesProgressed = 0;
  private readonly inFlight = new InFlight();
  private readonly blocks: BlockCounts = { total: 0, read: 0, sent: 0, verified: 0, zero: 0, identical: 0, retried: 0, failed: 0 };
  private startedAt: number;
  private movedAt: number;
  private doneAt: number | null = null;
  private ok: boolean | null = null;
  private exitCode: number | null = null;
  private readonly moveRate: RateWindow;
  private readonly wireRate: RateWindow;
  private readonly connectionRates = new Map<number, RateWindow>();
  private readonly warnings: string[] = [];
  private warningTotal = 0;

  constructor(opts: AggregatorOptions = {}) {
    this.clock = opts.now ?? Date.now;
    this.startedAt = this.clock();
    this.movedAt = this.startedAt;
    this.moveRate = new RateWindow(this.startedAt);
    this.wireRate = new RateWindow(this.startedAt);
  }

  /** A `ProgressListener`: bound, so it can be passed around as `aggregator.handle`. */
  readonly handle = (event: ProgressEvent): void => {
    const now = this.clock();
    switch (event.type) {
      case 'start':
        this.onStart(event, now);
        break;
      case 'block':
        this.onBlock(event.index, event.state, event.bytes, now);
        break;
      case 'bytes':
        this.onBytes(event, now);
        break;
      case 'warning':
        this.warningTotal++;
        this.warnings.push(event.message);
        if (this.warnings.length > MAX_WARNINGS) this.warnings.shift();
        break;
      case 'done':
        this.phase = 'done';
        this.doneAt = now;
        this.ok = event.ok;
        this.exitCode = event.exitCode;
        break;
    }
  };

  /** Warnings seen so far; renderers compare it with what they printed. Cheaper than a snapshot. */
  get warningCount(): number {
    return this.warningTotal;
  }

  /** Warnings that arrived after the first `seen` ones (only those still kept). */
  warningsSince(seen: number): string[] {
    const fresh = Math.min(this.warningTotal - seen, this.warnings.length);
    return fresh > 0 ? this.warnings.slice(this.warnings.length - fresh) : [];
  }

  snapshot(now: number = this.clock()): ProgressSnapshot {
    const until = this.doneAt ?? now;
    const rate = this.moveRate.rate(now);
    const moved = Math.min(this.bytesTotal, this.bytesVerified + this.inFlight.bytes);
    const remaining = Math.max(0, this.bytesTotal - moved);
    let eta: number | null = null;
    if (this.phase !== 'setup' && remaining === 0) eta = 0;
    else if (this.phase === 'transfer' && rate > 0) eta = Math.ceil(remaining / rate);
    const elapsed = Math.max(0, until - this.startedAt) / 1000;
    const connections: Record<number, number> = {};
    for (const [connection, window] of this.connectionRates) connections[connection] = Math.round(window.rate(now));
    return {
      phase: this.phase,
      command: this.command,
      source: this.source,
      target: this.target,
      engine: this.engine,
      blockSize: this.blockSize,
      blocks: { ...this.blocks },
      bytesTotal: this.bytesTotal,
      bytesVerified: this.bytesVerified,
      bytesAcked: this.bytesAcked,
      bytesMoved: moved,
      bytesWire: this.bytesWire,
      percent: percentOf(this.bytesVerified, this.bytesTotal, this.phase),
      percentMoved: percentOf(moved, this.bytesTotal, this.phase),
      rate: Math.round(rate),
      averageRate: elapsed > 0 ? Math.round(this.bytesProgressed / elapsed) : 0,
      wireRate: Math.round(this.wireRate.rate(now)),
      eta,
      elapsed,
      idle: this.phase === 'transfer' ? Math.max(0, now - this.movedAt) / 1000 : 0,
      connections,
      warnings: this.warnings.slice(),
      warningCount: this.warningTotal,
      done: this.phase === 'done',
      ok: this.ok,
      exitCode: this.exitCode,
    };
  }

  private onStart(event: Extract<ProgressEvent, { type: 'start' }>, now: number): void {
    this.phase = 'transfer';
    this.command = event.command;
    this.source = event.source;
    this.target = event.target;
    this.engine = event.engine;
    this.blockSize = event.blockSize;
    this.bytesTotal = event.bytesTotal;
    this.blocks.total = event.blocks;
    // An earlier run's blocks count as verified (the job's view), but not towards this run's rate.
    this.blocks.verified += event.blocksDone;
    this.bytesVerified += event.bytesDone;
    // Elapsed time and rates measure the transfer, not SSH setup before it.
    this.startedAt = now;
    this.movedAt = now;
    this.moveRate.reset(now);
    this.wireRate.reset(now);
    this.connectionRates.clear();
    this.inFlight.clear();
  }

  private onBytes(event: Extract<ProgressEvent, { type: 'bytes' }>, now: number): void {
    if (event.wire > 0) {
      this.bytesWire += event.wire;
      this.wireRate.add(now, event.wire);
      if (event.connection !== undefined) this.connectionWindow(event.connection).add(now, event.wire);
    }
    if (event.acked > 0) {
      this.bytesAcked += event.acked;
      this.inFlight.add(event.index, event.acked);
      this.moved(now, event.acked);
    }
  }

  private moved(now: number, bytes: number): void {
    this.bytesProgressed += bytes;
    this.moveRate.add(now, bytes);
    this.movedAt = now;
  }

  private onBlock(index: number, state: BlockEventState, bytes: number, now: number): void {
    switch (state) {
      case 'read':
        this.blocks.read++;
        return;
      case 'sent':
        this.blocks.sent++;
        return;
      case 'retry':
        this.blocks.retried++;
        this.inFlight.settle(index);
        return;
      case 'failed':
        this.blocks.failed++;
        this.inFlight.settle(index);
        return;
      case 'zero':
        this.blocks.zero++;
        break;
      case 'identical':
        this.blocks.identical++;
        break;
      case 'verified':
        break;
    }
    this.blocks.verified++;
    this.bytesVerified += bytes;
    // What the target took of it moved the job already; the rest (a zero or identical block, a
    // path that says nothing until its answer) moves it now.
    const rest = bytes - this.inFlight.settle(index);
    if (rest > 0) this.moved(now, rest);
  }

  private connectionWindow(connection: number): RateWindow {
    let window = this.connectionRates.get(connection);
    if (!window) {
      // Measured from the transfer start: a connection was busy before its first `sent` event.
      window = new RateWindow(this.startedAt);
      this.connectionRates.set(connection, window);
    }
    return window;
  }
}

function percentOf(done: number, total: number, phase: ProgressPhase): number {
  if (total <= 0) return phase === 'setup' ? 0 : 100;
  // Multiply first: (done / total) * 1000 can land just below an integer (0.57 * 1000 = 569.99…).
  return Math.floor((done * 1000) / total) / 10;
}
