/**
 * Free-space accounting for the `--via sftp` staging directory (DESIGN §2, issue #4).
 *
 * The rule: a block is staged only when the staging filesystem's available space, minus the
 * reserve, holds it together with every block staged or in flight. Then the filesystem cannot
 * run full under us (no ENOSPC, no truncated block file), as long as nobody else eats more than
 * the reserve between two measurements.
 *
 * "Available space" is measured (statvfs) while our own files are already on that filesystem,
 * so a measurement alone would count them twice. Each measurement is therefore turned into
 * `base`: a lower bound of what would be available without any of our staging files, by adding
 * back the bytes we know were on disk during the whole measurement (bytes the server confirmed
 * before the request went out, of files that were still being uploaded when the answer came).
 * A file that may have been removed meanwhile (handed to the helper, which deletes it) adds
 * nothing: that errs towards waiting, never towards overfilling.
 */
import { UsageError } from '../errors.js';
import { formatBytes, parseSize } from '../progress/format.js';

const GiB = 1024 ** 3;

/** `--remote-reserve`: a size (K/M/G/T) or a percentage of the staging filesystem. */
export function parseReserve(spec: string): { bytes: number } | { percent: number } {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(spec);
  if (m) {
    const percent = Number(m[1]);
    if (!(percent >= 0 && percent < 100)) throw new UsageError('BAD_OPTION', `--remote-reserve ${spec}: a percentage must be below 100`);
    return { percent };
  }
  return { bytes: parseSize(spec, '--remote-reserve') };
}

/** The reserve in bytes; default: the smaller of 1 GiB and 10 % of the filesystem. */
export function resolveReserve(spec: string | undefined, fsSize: number): number {
  if (spec === undefined) return Math.min(GiB, Math.floor(fsSize / 10));
  const r = parseReserve(spec);
  return 'bytes' in r ? r.bytes : Math.floor((fsSize * r.percent) / 100);
}

export interface StagingSpaceOptions {
  /** Bytes to leave free on the staging filesystem. */
  reserve: number;
  /** Files occupy whole allocation units (statvfs f_frsize) [4096]. */
  unit?: number;
  /** Per-file allowance for metadata (inode, extent or indirect blocks) [64 KiB]. */
  overhead?: number;
}

/** Space held for one staged block, from admission until its file is gone. */
export class SpaceLease {
  /** Bytes of the staging file the server has confirmed written (they are on its disk). */
  acked = 0;
  /** `staging`: the file only grows; `handed`: the helper may delete it at any moment. */
  state: 'staging' | 'handed' | 'released' = 'staging';

  constructor(
    /** Staging file name (one per block). */
    readonly name: string,
    readonly length: number,
    /** Bytes it may take on the filesystem. */
    readonly need: number,
  ) {}
}

/** A staging file no lease covers: left by an interrupted run, or by a failed attempt. */
interface Orphan {
  /** At most this much on disk. */
  committed: number;
  /** At least this much on disk (while it is not touched). */
  onDisk: number;
}

export interface SpaceSnapshot {
  leases: Map<SpaceLease, number>;
  orphans: Map<string, Orphan>;
}

/** Pure accounting; `SpaceGate` adds waiting and measuring. */
export class StagingSpace {
  readonly reserve: number;
  readonly unit: number;
  readonly overhead: number;
  /** Lower bound of the space available without our staging files; unknown until measured. */
  private base: number | undefined;
  private readonly leases = new Set<SpaceLease>();
  private readonly orphans = new Map<string, Orphan>();

  constructor(o: StagingSpaceOptions) {
    this.reserve = Math.max(0, Math.floor(o.reserve));
    this.unit = Math.max(512, Math.floor(o.unit ?? 4096));
    this.overhead = Math.max(0, Math.floor(o.overhead ?? 64 * 1024));
  }

  /** Bytes a staged file of `length` bytes may occupy. */
  need(length: number): number {
    return Math.ceil(length / this.unit) * this.unit + this.overhead;
  }

  /** Available space the filesystem needs (beyond our files) to stage one block of `length`. */
  required(length: number): number {
    return this.need(length) + this.reserve;
  }

  get measured(): boolean {
    return this.base !== undefined;
  }

  /** Lower bound of the space available without our files (0 before the first measurement). */
  get free(): number {
    return this.base ?? 0;
  }

  /** Bytes our staged, in-flight and orphaned files may occupy. */
  committed(): number {
    let n = 0;
    for (const l of this.leases) n += l.need;
    for (const o of this.orphans.values()) n += o.committed;
    return n;
  }

  activeLeases(): number {
    return this.leases.size;
  }

  hasOrphan(name: string): boolean {
    return this.orphans.has(name);
  }

  /** A staging file found on disk (resume): exactly `size` bytes now. */
  addOrphan(name: string, size: number): void {
    this.orphans.set(name, { committed: this.need(size), onDisk: size });
  }

  /** Take before sending a measurement request; hand to `measured()` with its answer. */
  snapshot(): SpaceSnapshot {
    const leases = new Map<SpaceLease, number>();
    for (const l of this.leases) if (l.state === 'staging') leases.set(l, l.acked);
    return { leases, orphans: new Map(this.orphans) };
  }

  /** A measurement of the available space, taken between `snap` and now. */
  onMeasured(snap: SpaceSnapshot, available: number): void {
    let ours = 0;
    for (const [l, acked] of snap.leases) if (l.state === 'staging' && this.leases.has(l)) ours += acked;
    for (const [name, o] of snap.orphans) if (this.orphans.get(name) === o) ours += o.onDisk;
    this.base = Math.max(0, available) + ours;
  }

  /** Would a block of `length` fit now? Its own orphan (an earlier attempt's file) is replaced. */
  fits(length: number, name: string): boolean {
    return this.shortfall(length, name) === 0;
  }

  /** Bytes missing to stage a block of `length` now (0: it fits). */
  shortfall(length: number, name: string): number {
    if (this.base === undefined) return this.need(length) + this.reserve;
    const mine = this.orphans.get(name)?.committed ?? 0;
    const wanted = this.committed() - mine + this.need(length) + this.reserve;
    return Math.max(0, wanted - this.base);
  }

  /** Admit a block if it fits; its orphan, if any, becomes part of the lease. */
  admit(length: number, name: string): SpaceLease | undefined {
    if (!this.fits(length, name)) return undefined;
    this.orphans.delete(name);
    const lease = new SpaceLease(name, length, this.need(length));
    this.leases.add(lease);
    return lease;
  }

  /** The server confirmed `bytes` more of the lease's file (or found them there on resume). */
  ack(lease: SpaceLease, bytes: number): void {
    if (lease.state === 'staging') lease.acked = Math.min(lease.length, lease.acked + bytes);
  }

  /** The upload opened the file afresh (truncated): nothing of it is known to be on disk. */
  truncated(lease: SpaceLease): void {
    if (lease.state === 'staging') lease.acked = 0;
  }

  /** The file is complete and handed to the helper, which deletes it when written. */
  handOver(lease: SpaceLease): void {
    if (lease.state === 'staging') lease.state = 'handed';
  }

  /** The file is gone. */
  release(lease: SpaceLease): void {
    if (!this.leases.delete(lease)) return;
    lease.state = 'released';
  }

  /** The attempt failed and its file may remain: keep counting it until it is reused. */
  abandon(lease: SpaceLease): void {
    if (!this.leases.delete(lease)) return;
    const onDisk = lease.state === 'staging' ? lease.acked : 0;
    lease.state = 'released';
    this.orphans.set(lease.name, { committed: lease.need, onDisk });
  }

  /** One line for messages: what is needed and what there is. */
  describe(length: number): string {
    return `${formatBytes(this.need(length))} per block + ${formatBytes(this.reserve)} reserve; ${formatBytes(this.free)} available, ${formatBytes(this.committed())} held by blocks in flight`;
  }
}

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
