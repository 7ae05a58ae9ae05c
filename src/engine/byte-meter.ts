/**
 * Counts one block attempt's bytes as its data path reports them (payload `onWire`/`onAck`) and
 * passes them on as `bytes` progress events: one per chunk at most, so a fast link does not flood
 * the listeners, and at least one a second while bytes trickle, so a slow one still shows them.
 * A chunk's worth of bytes taken by the target makes an event; the wire bytes go with it (every
 * path reports them first, or at the same time), so a chunk is one event, not two.
 */
import type { ProgressListener } from '../progress/events.js';

/** Bytes that make an event on their own. */
export const METER_CHUNK = 1024 * 1024;
/** Time after which whatever has gathered makes an event. */
export const METER_INTERVAL_MS = 1000;

export class ByteMeter {
  private wire = 0;
  private acked = 0;
  private pendingWire = 0;
  private pendingAcked = 0;
  private lastEmit: number;

  constructor(
    private readonly index: number,
    private readonly emit: ProgressListener,
    /** Hears wire bytes as they are passed on (the run's total, also of blocks never proven). */
    private readonly onWireTotal: (bytes: number) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.lastEmit = now();
  }

  /** Payload bytes reported so far (the block's share of bytes on the wire). */
  get wireBytes(): number {
    return this.wire;
  }

  get ackedBytes(): number {
    return this.acked;
  }

  readonly onWire = (bytes: number): void => {
    if (bytes <= 0) return;
    this.wire += bytes;
    this.pendingWire += bytes;
    this.maybeEmit();
  };

  readonly onAck = (bytes: number): void => {
    if (bytes <= 0) return;
    this.acked += bytes;
    this.pendingAcked += bytes;
    this.maybeEmit();
  };

  /** Pass on whatever has gathered (the block's answer came). */
  flush(): void {
    if (this.pendingWire === 0 && this.pendingAcked === 0) return;
    this.onWireTotal(this.pendingWire);
    this.emit({ type: 'bytes', index: this.index, wire: this.pendingWire, acked: this.pendingAcked });
    this.pendingWire = 0;
    this.pendingAcked = 0;
    this.lastEmit = this.now();
  }

  private maybeEmit(): void {
    if (this.pendingAcked >= METER_CHUNK || this.now() - this.lastEmit >= METER_INTERVAL_MS) this.flush();
  }
}
