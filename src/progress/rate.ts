/**
 * Bytes per second over a sliding window, kept in a small ring of time buckets.
 * Adding is O(1) and reading is O(buckets); there is no timer: old buckets are recognised
 * by their bucket number and ignored, so an idle window decays to 0 on its own.
 */
export class RateWindow {
  private readonly ids: Float64Array;
  private readonly sums: Float64Array;

  /**
   * @param since time (ms) the measurement starts; the rate is never averaged over time before it,
   *   so the first seconds of a run show the real speed instead of a diluted one.
   */
  constructor(
    private since: number,
    private readonly bucketMs = 1000,
    private readonly buckets = 10,
  ) {
    this.ids = new Float64Array(buckets).fill(-Infinity);
    this.sums = new Float64Array(buckets);
  }

  /** Restart the window (e.g. on the `start` event) without reallocating. */
  reset(since: number): void {
    this.since = since;
    this.ids.fill(-Infinity);
    this.sums.fill(0);
  }

  add(now: number, bytes: number): void {
    const id = Math.floor(now / this.bucketMs);
    const slot = ((id % this.buckets) + this.buckets) % this.buckets;
    if (this.ids[slot] !== id) {
      this.ids[slot] = id;
      this.sums[slot] = 0;
    }
    this.sums[slot] += bytes;
  }

  /** Bytes per second over the window ending at `now` (0 when nothing arrived in it). */
  rate(now: number): number {
    const current = Math.floor(now / this.bucketMs);
    const oldest = current - this.buckets + 1;
    let total = 0;
    for (let i = 0; i < this.buckets; i++) {
      const id = this.ids[i];
      if (id >= oldest && id <= current) total += this.sums[i];
    }
    const spanMs = now - Math.max(this.since, oldest * this.bucketMs);
    return total > 0 && spanMs > 0 ? (total * 1000) / spanMs : 0;
  }
}
