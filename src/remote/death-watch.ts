/**
 * "Wait for this, unless the channel dies first" without a leak. `Promise.race(x, died)` on a
 * long-lived `died` promise leaves a reaction on `died` for every race, each holding the race's
 * result: racing a payload iterator's `next()` that way kept every sent chunk alive for the
 * worker's lifetime (measured: RSS grew with the bytes sent). Here each wait removes itself.
 */
export class DeathWatch {
  private error?: Error;
  private readonly waiters = new Set<(err: Error) => void>();

  get dead(): Error | undefined {
    return this.error;
  }

  /** Mark dead (first call wins) and fail everything waiting. */
  kill(err: Error): void {
    if (this.error) return;
    this.error = err;
    for (const w of this.waiters) w(err);
    this.waiters.clear();
  }

  /** `p`, or a rejection with the death error if death comes first. */
  race<T>(p: Promise<T>): Promise<T> {
    if (this.error) {
      p.catch(() => undefined);
      return Promise.reject(this.error);
    }
    return new Promise<T>((resolve, reject) => {
      const onDeath = (err: Error) => reject(err);
      this.waiters.add(onDeath);
      p.then(
        (v) => {
          this.waiters.delete(onDeath);
          resolve(v);
        },
        (e: unknown) => {
          this.waiters.delete(onDeath);
          reject(e);
        },
      );
    });
  }
}
