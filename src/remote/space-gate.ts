/**
 * Admission of blocks into a staging directory: waits until a block fits (StagingSpace's rule)
 * and re-measures the free space while blocks wait or as it gets old.
 */
import { formatBytes } from '../format.js';
import type { SpaceLease, StagingSpace } from './staging-space.js';

export interface SpaceGateOptions {
  /** Available bytes on the staging filesystem now; absent: never re-measured. */
  measure?: () => Promise<number>;
  /** While blocks wait, re-measure at most this often [1000 ms]. */
  waitPollMs?: number;
  /** While blocks flow, refresh in the background when the last measurement is older [5000 ms]. */
  refreshMs?: number;
  /** Called once per episode when a block waits and none of ours is in flight to free space. */
  onStuck?: (message: string) => void;
  now?: () => number;
}

interface Waiter {
  name: string;
  length: number;
  resolve(lease: SpaceLease): void;
  reject(err: unknown): void;
}

/**
 * Admission in arrival order: the first block that does not fit holds back the ones behind it
 * (no starvation), except a block whose own earlier file is there (it frees that file by
 * reusing it, so letting it pass cannot deadlock the queue).
 */
export class SpaceGate {
  private queue: Waiter[] = [];
  private measuring: Promise<void> | undefined;
  private lastMeasured = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private stuckWarned = false;
  private closed = false;
  private readonly now: () => number;

  constructor(
    readonly space: StagingSpace,
    private readonly o: SpaceGateOptions = {},
  ) {
    this.now = o.now ?? Date.now;
  }

  /** Measure now and wait for the answer (setup); errors propagate. */
  async measureNow(): Promise<void> {
    if (!this.o.measure) return;
    const snap = this.space.snapshot();
    const available = await this.o.measure();
    this.space.onMeasured(snap, available);
    this.lastMeasured = this.now();
  }

  /** Wait until a block of `length` may be staged as `name`. */
  acquire(name: string, length: number, signal: AbortSignal): Promise<SpaceLease> {
    signal.throwIfAborted();
    if (this.closed) return Promise.reject(new Error('staging space closed'));
    return new Promise<SpaceLease>((resolve, reject) => {
      const onAbort = () => {
        this.queue = this.queue.filter((w) => w !== waiter);
        reject(signal.reason);
        this.pump();
      };
      const waiter: Waiter = {
        name,
        length,
        resolve: (lease) => {
          signal.removeEventListener('abort', onAbort);
          resolve(lease);
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.pump();
    });
  }

  /**
   * The lease's file is gone. If blocks wait, measure now: the last figure may have been taken
   * while this file was still there, and it counted as nobody's then (see `onMeasured`).
   */
  release(lease: SpaceLease): void {
    this.space.release(lease);
    this.pump();
    if (this.queue.length > 0) this.remeasure();
  }

  abandon(lease: SpaceLease): void {
    this.space.abandon(lease);
    this.pump();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const q = this.queue;
    this.queue = [];
    for (const w of q) w.reject(new Error('staging space closed'));
  }

  // ---------------------------------------------------------------------------------------

  /** Admit what fits; then re-measure if blocks wait (or, with `refresh`, if the figure is old). */
  private pump(refresh = true): void {
    if (this.closed) return;
    for (;;) {
      const i = this.queue.findIndex((w, at) => (at === 0 || this.space.hasOrphan(w.name)) && this.space.fits(w.length, w.name));
      if (i < 0) break;
      const [w] = this.queue.splice(i, 1);
      w.resolve(this.space.admit(w.length, w.name)!);
      this.stuckWarned = false;
    }
    if (this.queue.length === 0) {
      if (refresh && this.now() - this.lastMeasured >= (this.o.refreshMs ?? 5000)) this.remeasure();
      return;
    }
    const head = this.queue[0];
    if (this.space.activeLeases() === 0 && !this.stuckWarned && this.space.measured && !this.measuring) {
      // Nothing of ours will free space: only someone else can. Say so once, keep waiting.
      this.stuckWarned = true;
      this.o.onStuck?.(`waiting for staging space: ${formatBytes(this.space.shortfall(head.length, head.name))} more needed (${this.space.describe(head.length)})`);
    }
    const due = this.lastMeasured + (this.o.waitPollMs ?? 1000) - this.now();
    if (due <= 0) this.remeasure();
    else if (this.o.measure && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, due);
      this.timer.unref?.();
    }
  }

  /** Start a measurement unless one is running; pump when it lands. */
  private remeasure(): void {
    if (!this.o.measure || this.measuring || this.closed) return;
    const snap = this.space.snapshot();
    this.lastMeasured = this.now(); // also throttles retries after a failed measurement
    this.measuring = this.o
      .measure()
      .then(
        (available) => {
          this.space.onMeasured(snap, available);
          this.lastMeasured = this.now();
        },
        () => undefined, // keep the last value; the next poll tries again
      )
      .finally(() => {
        this.measuring = undefined;
        this.pump(false);
      });
  }
}
