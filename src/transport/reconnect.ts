/**
 * `--reconnect-timeout` is a bound from the moment data stops moving to the moment the run
 * gives up: the keepalive that notices a dead link is derived from it (noticing must leave
 * most of the window for reconnecting), each connection attempt gets only what is left of it,
 * and an attempt is made until its end, so a link that comes back inside the window is used.
 */
import { DdtError, isDdtError } from '../errors.js';

/** Unanswered keepalives before a connection counts as dead (ssh2 and OpenSSH alike). */
export const KEEPALIVE_COUNT_MAX = 3;
/** Below this, keepalives have dropped busy links here (ssh2 issue 474). */
const KEEPALIVE_MIN_MS = 2_000;
export const KEEPALIVE_MAX_MS = 10_000;
const BACKOFF_START_MS = 250;
const BACKOFF_MAX_MS = 8_000;
/** An attempt shorter than this cannot even finish a key exchange. */
const ATTEMPT_MIN_MS = 1_000;

/**
 * The keepalive interval for a reconnect window: a dead link is noticed after about
 * KEEPALIVE_COUNT_MAX + 1 intervals, at most half of the window (the rest is for reconnecting).
 * A shorter configured interval (ServerAliveInterval) is kept.
 */
export function keepaliveFor(reconnectTimeoutMs: number, configuredMs?: number): number {
  const derived = Math.min(KEEPALIVE_MAX_MS, Math.max(KEEPALIVE_MIN_MS, Math.floor(reconnectTimeoutMs / (2 * (KEEPALIVE_COUNT_MAX + 1)))));
  return configuredMs !== undefined && configuredMs > 0 ? Math.min(configuredMs, derived) : derived;
}

/**
 * When a connection that was just found dead last moved data: one that ran out of keepalives
 * had been silent for KEEPALIVE_COUNT_MAX of them already (one more may have been answered
 * just before the link went, so this errs late, never early).
 */
export function silentSince(reason: string, keepaliveMs: number, now = Date.now()): number {
  return /keepalive timeout|not responding/i.test(reason) ? now - KEEPALIVE_COUNT_MAX * keepaliveMs : now;
}

export interface RetryWindow {
  /** When data stopped moving (the start of the window). */
  since: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Stop trying at once (the owner closed). */
  closed(): boolean;
  /** An error that no retry can mend (host key, refused login, an address that never worked). */
  fatal(err: unknown): boolean;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Call `attempt(msLeft)` with capped exponential backoff until it succeeds or the window is
 * over. Each attempt may take at most what is left of the window; the last one lands on its end.
 */
export async function retryInWindow<T>(what: string, w: RetryWindow, attempt: (msLeft: number) => Promise<T>): Promise<T> {
  for (let delay = BACKOFF_START_MS; ; delay = Math.min(delay * 2, BACKOFF_MAX_MS)) {
    if (w.closed()) throw new DdtError('CLOSED', `${what} is closed`);
    w.signal?.throwIfAborted();
    const left = w.timeoutMs - (Date.now() - w.since);
    try {
      return await attempt(Math.max(ATTEMPT_MIN_MS, left));
    } catch (err) {
      if (w.fatal(err) || w.closed() || isDdtError(err, 'CLOSED')) throw err;
      w.signal?.throwIfAborted();
      const elapsed = Date.now() - w.since;
      // No room left for an attempt that could finish a key exchange: the window is over.
      if (w.timeoutMs - elapsed < ATTEMPT_MIN_MS / 2) {
        throw new DdtError('SSH_CONNECT', `${(err as Error).message} (gave up after ${(elapsed / 1000).toFixed(1)} s)`, { cause: err });
      }
      // The last attempt starts just in time to end with the window.
      await sleep(Math.max(0, Math.min(delay, w.timeoutMs - elapsed - ATTEMPT_MIN_MS)), w.signal);
    }
  }
}
