/**
 * Free-space accounting for a remote staging directory (`--via sftp`, `--engine rsync`).
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
import { formatBytes, parseSize } from '../format.js';
import { DdtError } from '../errors.js';

const GiB = 1024 ** 3;

/** `--remote-reserve`: a size (K/M/G/T) or a percentage of the staging filesystem. */
export function parseReserve(spec: string): { bytes: number } | { percent: number } {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(spec);
  if (m) {
    const percent = Number(m[1]);
    if (!(percent >= 0 && percent < 100)) throw new DdtError('BAD_OPTION', `--remote-reserve ${spec}: a percentage must be below 100`);
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

/** What a staging dir holds for a run: checked before anything is written. */
export interface StagingPlan {
  /** The remote dir resolved on the remote host. */
  dir: string;
  /** Bytes left free on its filesystem. */
  reserve: number;
  /** Available bytes the probe saw. */
  free: number;
}

/**
 * The one rule for "can this dir stage blocks?", from a probe of it: it must exist and be
 * writable, and its filesystem must hold at least one block of `blockLength` plus the reserve.
 * Refusals are exit 2, nothing written.
 */
export function planStaging(probe: { dir?: string; dirWritable?: boolean; dirSize?: number; free: number }, shown: string, reserveSpec: string | undefined, blockLength: number): StagingPlan {
  if (!probe.dir || !probe.dirWritable) {
    throw new DdtError('BAD_PATH', `--remote-dir ${shown} ${probe.dir ? 'is not writable by the remote user' : 'does not exist on the remote host'}: create it, choose another, or use --via stream`);
  }
  const reserve = resolveReserve(reserveSpec, probe.dirSize ?? 0);
  const space = new StagingSpace({ reserve });
  space.onMeasured(space.snapshot(), probe.free);
  if (space.free - space.reserve < space.need(blockLength)) throw new DdtError('STAGING_SPACE', stagingSpaceMessage(probe.dir, space, blockLength));
  return { dir: probe.dir, reserve, free: probe.free };
}

/** The refusal when not even one block fits: what is there, what is needed, what to do. */
export function stagingSpaceMessage(dir: string, space: StagingSpace, blockLength: number): string {
  const needed = space.required(blockLength);
  return (
    `not enough space to stage even one block in ${dir} on the remote host: ${formatBytes(space.free)} available, ` +
    `${formatBytes(needed)} needed (a ${formatBytes(blockLength)} block + ${formatBytes(space.reserve)} reserve); ` +
    `free ${formatBytes(needed - space.free)}, or choose another --remote-dir, a smaller --block-size or --remote-reserve, or --via stream`
  );
}
