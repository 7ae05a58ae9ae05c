import { parseSize } from '../format.js';
import { DdtError } from '../errors.js';

/** Bytes per second allowed at a moment (0 = unlimited). */
export interface RateSchedule {
  rateAt(when: Date): number;
  describe(): string;
}

interface Window {
  from: number; // minutes after local midnight
  to: number;
  rate: number;
}

const HHMM = /^(\d{1,2}):(\d{2})$/;

function minutes(text: string, whole: string): number {
  const m = HHMM.exec(text);
  if (!m || Number(m[1]) > 24 || Number(m[2]) > 59 || (Number(m[1]) === 24 && Number(m[2]) > 0)) {
    throw new DdtError('BAD_OPTION', `invalid --bwlimit "${whole}": "${text}" is not a time HH:MM`);
  }
  return Number(m[1]) * 60 + Number(m[2]);
}

/**
 * `--bwlimit 20M`, or a schedule `08:00-18:00=2M,*=0` in local time: the first window that
 * contains the moment wins, `*` covers the rest (default unlimited). Windows may wrap midnight
 * (`22:00-06:00=50M`). Rates in bytes per second with K/M/G suffixes (powers of 1024).
 */
export function parseBwLimit(text: string): RateSchedule {
  const whole = text.trim();
  if (!whole.includes('=')) {
    const rate = parseSize(whole, '--bwlimit');
    return { rateAt: () => rate, describe: () => (rate ? `${whole}/s` : 'unlimited') };
  }
  const windows: Window[] = [];
  let fallback = 0;
  for (const item of whole.split(',')) {
    const [span, rateText] = item.split('=');
    if (!span || rateText === undefined) throw new DdtError('BAD_OPTION', `invalid --bwlimit "${whole}": expected HH:MM-HH:MM=RATE,…,*=RATE`);
    const rate = parseSize(rateText, '--bwlimit');
    if (span.trim() === '*') {
      fallback = rate;
      continue;
    }
    const [a, b] = span.split('-');
    if (!a || !b) throw new DdtError('BAD_OPTION', `invalid --bwlimit "${whole}": "${span}" is not HH:MM-HH:MM`);
    windows.push({ from: minutes(a.trim(), whole), to: minutes(b.trim(), whole), rate });
  }
  return {
    rateAt(when: Date): number {
      const m = when.getHours() * 60 + when.getMinutes();
      for (const w of windows) {
        const inside = w.from <= w.to ? m >= w.from && m < w.to : m >= w.from || m < w.to;
        if (inside) return w.rate;
      }
      return fallback;
    },
    describe: () => whole,
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One token bucket for all channels together: the limit holds for the run, not per channel.
 * Takers may go into debt (a 4 MiB chunk under a 1 MiB/s limit) and then wait it off; the rate
 * is re-read from the schedule as time passes, so a window boundary takes effect live.
 */
export class TokenBucket {
  private tokens = 0;
  private last: number;

  constructor(
    private readonly schedule: RateSchedule,
    private readonly now: () => number = Date.now,
  ) {
    this.last = now();
  }

  private refill(): number {
    const t = this.now();
    const rate = this.schedule.rateAt(new Date(t));
    if (rate === 0) {
      this.tokens = 0;
    } else {
      // At most a quarter second of burst, so a limit is a limit even after an idle spell.
      this.tokens = Math.min(this.tokens + ((t - this.last) / 1000) * rate, rate / 4);
    }
    this.last = t;
    return rate;
  }

  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.refill() === 0) return;
    this.tokens -= bytes;
    for (;;) {
      if (this.tokens >= 0) return;
      const rate = this.schedule.rateAt(new Date(this.now()));
      if (rate === 0) return;
      await sleep(Math.min(1000, (-this.tokens / rate) * 1000), signal);
      this.refill();
    }
  }
}

/** Pass buffers through the bucket before they go on the wire. */
export async function* throttled<T>(items: AsyncIterable<T>, bucket: TokenBucket | undefined, size: (item: T) => number, signal?: AbortSignal): AsyncGenerator<T> {
  for await (const item of items) {
    if (bucket) await bucket.take(size(item), signal);
    yield item;
  }
}
