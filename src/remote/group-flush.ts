/**
 * Flushes of one target, batched (group commit). Each caller waits for a flush that began after
 * its call, so every write it saw answered before calling is covered; at most one flush runs,
 * and the callers that arrive meanwhile share the next one. Under load a flush then covers all
 * the blocks answered while the previous one ran, instead of one fsync per block.
 */
export class GroupFlush {
  private running?: Promise<void>;
  private next?: Promise<void>;

  constructor(private readonly flushOnce: () => Promise<void>) {}

  /** Resolves when a flush that began after this call has finished; rejects with its error. */
  request(): Promise<void> {
    if (!this.running) return this.begin();
    // The running flush may have begun before the caller's writes finished: wait for the next.
    this.next ??= this.running.then(noop, noop).then(() => {
      this.next = undefined;
      return this.begin();
    });
    return this.next;
  }

  private begin(): Promise<void> {
    const p = this.flushOnce();
    this.running = p;
    void p.then(noop, noop).then(() => {
      if (this.running === p) this.running = undefined;
    });
    return p;
  }
}

function noop(): void {}
