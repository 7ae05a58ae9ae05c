/**
 * Says when a run stops moving: a link that went quiet shows only as a rate decaying to 0, and
 * the user cannot tell a slow target from a dead one. After STALL_AFTER_S seconds in which the
 * target took nothing and no block was proven, one warning names what we wait for and how long
 * until the reconnect timeout gives up; another says when bytes move again.
 */
import { formatDuration } from '../format.js';
import { STALL_AFTER_S } from '../progress/aggregator.js';
import type { ProgressEvent, ProgressListener } from '../progress/events.js';

export interface StallWatchOptions {
  /** What the run waits for, e.g. `root@10.0.0.5:/dev/vdb`. */
  peer: string;
  /** The remote end's reconnect timeout; absent for a local copy. */
  reconnectTimeoutMs?: number;
  now?: () => number;
  /** How often to look (tests tick by hand and pass 0: no timer). */
  everyMs?: number;
}

export class StallWatch {
  private readonly now: () => number;
  private movedAt: number;
  private stalledSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly emit: ProgressListener,
    private readonly o: StallWatchOptions,
  ) {
    this.now = o.now ?? Date.now;
    this.movedAt = this.now();
    const every = o.everyMs ?? 1000;
    if (every > 0) {
      this.timer = setInterval(() => this.check(), every);
      // A forgotten stop() must not keep the process alive.
      this.timer.unref();
    }
  }

  /** Passes every event on, and notes the ones that mean the job moved. */
  readonly listen: ProgressListener = (event) => {
    if (moves(event)) this.moved();
    this.emit(event);
  };

  /** Warn once the run has not moved for STALL_AFTER_S seconds (the timer calls this). */
  check(): void {
    if (this.stalledSince !== undefined) return;
    const idleMs = this.now() - this.movedAt;
    if (idleMs < STALL_AFTER_S * 1000) return;
    this.stalledSince = this.movedAt;
    const left = this.o.reconnectTimeoutMs === undefined ? '' : `, reconnect timeout in ${formatDuration(Math.max(0, this.o.reconnectTimeoutMs - idleMs) / 1000)}`;
    this.emit({ type: 'warning', message: `no progress for ${formatDuration(idleMs / 1000)}: waiting for ${this.o.peer}${left}` });
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private moved(): void {
    const now = this.now();
    if (this.stalledSince !== undefined) {
      this.emit({ type: 'warning', message: `moving again after ${formatDuration((now - this.stalledSince) / 1000)} without progress` });
      this.stalledSince = undefined;
    }
    this.movedAt = now;
  }
}

/** The target took bytes, or a block was proven (zero and identical blocks move the job too). */
function moves(event: ProgressEvent): boolean {
  if (event.type === 'bytes') return event.acked > 0;
  return event.type === 'block' && (event.state === 'verified' || event.state === 'zero' || event.state === 'identical');
}
