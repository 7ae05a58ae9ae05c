/**
 * The session slots of one SSH connection (ssh2 channels, or sessions over an OpenSSH master),
 * and what the server's refusals teach about them. OpenSSH refuses the session past its
 * `MaxSessions` (10 by default); a refusal right after one of our sessions closed is usually
 * not that limit but a slot sshd is still freeing, so it is tried again a few times before the
 * budget believes it and shrinks. Every place that opens sessions asks its budget.
 */

/** A refusal of an open begun within this long of a close is taken for a slot still being freed. */
const RECENT_CLOSE_MS = 1_000;
/** Tries after such a refusal (25, 50, 100, 200, 400 ms later) before it counts as the limit. */
const RACE_RETRIES = 5;

export type RefusalVerdict =
  /** wait this long, then try again: probably a slot being freed */
  | { retryInMs: number }
  /** the limit is real: capacity is now lower */
  | { shrunkTo: number };

export class SessionBudget {
  private open = 0;
  private opening = 0;
  /** Sessions given back whose close the server has not yet acknowledged. */
  private closing = 0;
  private freedAt = 0;
  /** Shrunk while opens were still in flight: tell the owner once they settled (final number). */
  private shrunkFrom: number | undefined;

  constructor(
    /** Sessions this connection may have at once, as far as we know. */
    public capacity: number,
    /** Told after a shrink, once concurrent opens have settled, with the new capacity. */
    private readonly onShrink?: (capacity: number, before: number) => void,
  ) {
    this.capacity = Math.max(1, Math.floor(capacity));
  }

  /** Sessions open or being opened. */
  get inUse(): number {
    return this.open + this.opening;
  }

  get hasRoom(): boolean {
    return this.inUse < this.capacity;
  }

  /** A slot is being given back and will be free in a moment. */
  get freeingSoon(): boolean {
    return this.closing > 0;
  }

  /** An open begins. */
  take(): void {
    this.opening++;
  }

  /** The open succeeded. */
  opened(): void {
    this.opening = Math.max(0, this.opening - 1);
    this.open++;
    this.settled();
  }

  /** The open failed (refused or not): no slot was used. */
  failed(): void {
    this.opening = Math.max(0, this.opening - 1);
    this.settled();
  }

  /** An open session was asked to close; `closed()` follows with the acknowledgement. */
  closing_(): void {
    this.closing++;
  }

  closed(): void {
    this.closing = Math.max(0, this.closing - 1);
  }

  /** The session is gone: the slot is free (on the server a moment later). */
  give(): void {
    this.open = Math.max(0, this.open - 1);
    this.freedAt = Date.now();
  }

  /**
   * The server refused a session (already `failed()`). `attempt` counts this caller's refusals
   * so far (0 for the first); `begunAt` is when that open was sent. A close is measured against
   * it, not against now: on a busy machine the refusal may be handled long after it arrived.
   */
  refused(attempt: number, begunAt: number): RefusalVerdict {
    if (begunAt - this.freedAt < RECENT_CLOSE_MS && attempt < RACE_RETRIES) return { retryInMs: 25 * 2 ** attempt };
    return { shrunkTo: this.shrink(this.inUse) };
  }

  /** The connection holds at most `n` (never below one: a connection without sessions is useless). */
  shrink(n: number): number {
    const before = this.capacity;
    this.capacity = Math.max(1, Math.min(this.capacity, n));
    if (this.capacity < before) {
      this.shrunkFrom ??= before;
      this.settled();
    }
    return this.capacity;
  }

  /** The connection was lost: its sessions are gone with it. */
  reset(): void {
    this.open = 0;
    this.closing = 0;
  }

  private settled(): void {
    if (this.shrunkFrom === undefined || this.opening > 0) return;
    const before = this.shrunkFrom;
    this.shrunkFrom = undefined;
    this.onShrink?.(this.capacity, before);
  }
}
