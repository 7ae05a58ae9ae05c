/**
 * Bytes the target has taken of blocks not yet proven. Where a job stands is what is proven
 * plus these: a 64 MiB block at 10 MiB/s takes six seconds to prove, and the display must move
 * meanwhile. A block that is retried or given up drops out again: its bytes must be taken anew.
 */
export class InFlight {
  private readonly acked = new Map<number, number>();
  private sum = 0;

  /** Bytes taken of unproven blocks, all together. */
  get bytes(): number {
    return this.sum;
  }

  add(index: number, bytes: number): void {
    this.acked.set(index, (this.acked.get(index) ?? 0) + bytes);
    this.sum += bytes;
  }

  /** The block is proven, retried or given up; returns the bytes it had taken. */
  settle(index: number): number {
    const had = this.acked.get(index) ?? 0;
    this.acked.delete(index);
    this.sum -= had;
    return had;
  }

  clear(): void {
    this.acked.clear();
    this.sum = 0;
  }
}
