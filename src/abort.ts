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
