import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { parseBwLimit, TokenBucket } from '../../src/transport/bwlimit.js';

const at = (hh: number, mm: number) => new Date(2026, 10, 28, hh, mm);

describe('--bwlimit', () => {
  it('a plain rate applies all day; 0 is unlimited', () => {
    assert.equal(parseBwLimit('20M').rateAt(at(3, 0)), 20 * 1024 * 1024);
    assert.equal(parseBwLimit('0').rateAt(at(12, 0)), 0);
  });

  it('a schedule picks the first window containing the local time, * for the rest, wrapping midnight', () => {
    const s = parseBwLimit('08:00-18:00=2M,22:00-06:00=50M,*=10M');
    assert.equal(s.rateAt(at(8, 0)), 2 * 1024 * 1024);
    assert.equal(s.rateAt(at(17, 59)), 2 * 1024 * 1024);
    assert.equal(s.rateAt(at(18, 0)), 10 * 1024 * 1024);
    assert.equal(s.rateAt(at(23, 30)), 50 * 1024 * 1024);
    assert.equal(s.rateAt(at(5, 59)), 50 * 1024 * 1024);
    assert.equal(parseBwLimit('08:00-18:00=2M').rateAt(at(20, 0)), 0, 'no * means unlimited outside the windows');
  });

  it('rejects malformed values with a UsageError', () => {
    for (const bad of ['fast', '25:00-26:00=1M', '08:00=1M', '08:00-18:00=lots', '8-9=1M']) {
      assert.throws(() => parseBwLimit(bad), UsageError, bad);
    }
  });

  it('the token bucket holds the rate across takers, and a window boundary changes it live', async () => {
    let now = at(7, 59).getTime() + 59_000; // one second before 08:00
    const schedule = parseBwLimit('08:00-09:00=1K,*=0');
    const bucket = new TokenBucket(schedule, () => now);
    await bucket.take(10 * 1024 * 1024); // unlimited before 08:00: returns at once
    now += 1000; // 08:00: 1 KiB/s
    const t0 = Date.now();
    // 256 bytes of burst allowance; the next take must wait for tokens.
    const waiting = bucket.take(300);
    let settled = false;
    void waiting.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(settled, false, 'a take beyond the budget must wait');
    now += 1000; // time passes: tokens refill
    await waiting;
    assert.ok(Date.now() - t0 < 2000);
  });
});
