import assert from 'node:assert/strict';
import { throughputOf } from '../../src/cli/output.js';
import type { JobSummary } from '../../src/engine/summary.js';

const MiB = 1024 * 1024;

function summary(over: Partial<JobSummary>): JobSummary {
  return {
    ok: true, exitCode: 0, command: 'send', source: 'a', target: 'b', blocks: 16, verified: 16, sent: 16, zeroBlocks: 4,
    identicalBlocks: 0, retransmitted: 0, failed: 0, pending: 0, badRanges: [], bytesTotal: 1024 * MiB, bytesOnWire: 768 * MiB,
    seconds: 8, checksum: 'xxh64', engine: 'native', via: 'openssh', channels: 4, journal: 'j', ...over,
  };
}

describe('cli/output: throughput and savings of the summary', () => {
  it('a fresh run: every byte proven this run, the rate is their average, savings what did not cross the wire', () => {
    const t = throughputOf(summary({}));
    assert.equal(t.bytesProven, 1024 * MiB);
    assert.equal(t.bytesPerSecond, 128 * MiB);
    assert.equal(t.savedBytes, 256 * MiB);
    assert.equal(t.savings, 0.25);
  });

  it("a resumed run counts only this run's bytes (from the progress counters), not the job's", () => {
    const t = throughputOf(summary({ bytesOnWire: 100 * MiB, seconds: 2 }), { bytesProven: 200 * MiB });
    assert.equal(t.bytesPerSecond, 100 * MiB);
    assert.equal(t.savings, 0.5);
  });

  it('nothing proven, compressed bigger, zero seconds: no division by zero, no negative savings', () => {
    assert.deepEqual(throughputOf(summary({ verified: 3, seconds: 0 })), { bytesProven: 0, bytesPerSecond: 0, savedBytes: 0, savings: 0 });
    assert.equal(throughputOf(summary({ bytesOnWire: 2048 * MiB })).savings, 0);
  });
});
