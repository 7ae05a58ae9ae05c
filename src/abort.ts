/**
 * `p`, or the signal's reason as soon as it aborts first (what `p` does later is ignored).
 * For waits on shared work (a reconnecting master, a shared flush) that one caller may give up
 * on without cancelling it for the others.
 */
export function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined); // nobody waits for it any more: not an unhandled rejection
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Callers waiting their turn, first come first served: `wait` joins the line (and leaves it
 * when the signal aborts), `wakeOne` hands a value to the longest waiter, `wakeAll` to all.
 */
export class WaitLine<T> {
  private waiting: Array<(x: T) => void> = [];

  wait(signal: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        this.waiting = this.waiting.filter((f) => f !== take);
        reject(signal.reason);
      };
      const take = (x: T) => {
        signal.removeEventListener('abort', onAbort);
        resolve(x);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(take);
    });
  }

  /** Give `x` to the longest waiter; false when nobody waits. */
  wakeOne(x: T): boolean {
    const next = this.waiting.shift();
    next?.(x);
    return next !== undefined;
  }

  wakeAll(x: T): void {
    const all = this.waiting;
    this.waiting = [];
    for (const f of all) f(x);
  }
}
