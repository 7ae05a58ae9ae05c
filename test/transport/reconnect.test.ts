import assert from 'node:assert/strict';
import { DdtError } from '../../src/errors.js';
import { keepaliveFor, retryInWindow, silentSince } from '../../src/transport/reconnect.js';

describe('transport/reconnect: --reconnect-timeout as a bound', function () {
  this.timeout(10_000);
  it('keepalives notice a dead link within half the window, between 2 s and 10 s; a shorter configured one is kept', () => {
    assert.equal(keepaliveFor(15_000), 2_000);
    assert.equal(keepaliveFor(60_000), 7_500);
    assert.equal(keepaliveFor(600_000), 10_000);
    assert.equal(keepaliveFor(1_000), 2_000);
    assert.equal(keepaliveFor(600_000, 3_000), 3_000);
    assert.equal(keepaliveFor(15_000, 60_000), 2_000);
  });

  it('a keepalive timeout dates the loss back by three intervals; another loss is now', () => {
    assert.equal(silentSince('Keepalive timeout', 2_000, 100_000), 94_000);
    assert.equal(silentSince('Timeout, server 10.0.0.1 not responding.', 2_000, 100_000), 94_000);
    assert.equal(silentSince('read ECONNRESET', 2_000, 100_000), 100_000);
  });

  const window = (timeoutMs: number, since = Date.now()) => ({ since, timeoutMs, closed: () => false, fatal: () => false });

  it('tries until the window is over, each attempt bounded by what is left; gives up within it', async () => {
    const budgets: number[] = [];
    const t0 = Date.now();
    await assert.rejects(
      retryInWindow('test', window(2_500), async (left) => {
        budgets.push(left);
        throw new Error('unreachable');
      }),
      (err: Error) => err instanceof DdtError && err.code === 'SSH_CONNECT' && /unreachable \(gave up after 2\.\d s\)/.test(err.message),
    );
    const took = Date.now() - t0;
    assert.ok(took >= 1_500 && took < 2_700, `gave up after ${took} ms`);
    assert.ok(budgets.length >= 3, `${budgets.length} attempts`);
    assert.ok(budgets.every((b, i) => i === 0 || b <= budgets[i - 1]!), `budgets ${budgets}`);
  });

  it('a window that began earlier (the loss dated back) is shorter; success inside it is used', async () => {
    let n = 0;
    const got = await retryInWindow('test', window(10_000, Date.now() - 8_000), async (left) => {
      assert.ok(left <= 2_000);
      if (++n < 3) throw new Error('not yet');
      return 'up';
    });
    assert.equal(got, 'up');
  });

  it('fatal errors and an abort end it at once', async () => {
    const fatal = new DdtError('SSH_AUTH', 'refused');
    await assert.rejects(retryInWindow('test', { ...window(60_000), fatal: (e) => e === fatal }, () => Promise.reject(fatal)), (e) => e === fatal);
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(new Error('stop')), 300);
    await assert.rejects(retryInWindow('test', { ...window(60_000), signal: ac.signal }, () => Promise.reject(new Error('down'))), /stop/);
    assert.ok(Date.now() - t0 < 1_000);
  });
});
