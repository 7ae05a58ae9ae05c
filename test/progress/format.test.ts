import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { formatBytes, formatDuration, formatRate, parseSize } from '../../src/format.js';

describe('progress/format', () => {
  it('formatBytes uses IEC units with one decimal', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1.0 KiB');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(412 * 1024 ** 2), '412.0 MiB');
    assert.equal(formatBytes(1024 ** 3), '1.0 GiB');
    assert.equal(formatBytes(2.5 * 1024 ** 4), '2.5 TiB');
    // Rounds up into the next unit instead of printing 1024.0 KiB.
    assert.equal(formatBytes(1024 * 1024 - 1), '1.0 MiB');
  });

  it('formatRate appends /s', () => {
    assert.equal(formatRate(98.3 * 1024 ** 2), '98.3 MiB/s');
    assert.equal(formatRate(0), '0 B/s');
  });

  it('formatDuration', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(12), '12s');
    assert.equal(formatDuration(245), '4m05s');
    assert.equal(formatDuration(3723), '1h02m03s');
    assert.equal(formatDuration(59.6), '1m00s');
    assert.equal(formatDuration(null), '?');
    assert.equal(formatDuration(Infinity), '?');
  });

  describe('parseSize', () => {
    const valid: Array<[string | number, number]> = [
      ['0', 0],
      ['512', 512],
      ['512B', 512],
      ['64K', 64 * 1024],
      ['64k', 64 * 1024],
      ['64KiB', 64 * 1024],
      ['64kb', 64 * 1024],
      ['64M', 64 * 1024 ** 2],
      ['1G', 1024 ** 3],
      ['1GiB', 1024 ** 3],
      ['2T', 2 * 1024 ** 4],
      [' 2M ', 2 * 1024 ** 2],
      [4096, 4096],
    ];
    for (const [text, bytes] of valid) {
      it(`accepts ${JSON.stringify(text)}`, () => assert.equal(parseSize(text), bytes));
    }

    const invalid = ['', 'abc', '-1', '1.5G', '64X', '64 M', 'M', '64MiBs', '64iB', '1e6', '0x10', '99999999999T'];
    for (const text of invalid) {
      it(`rejects ${JSON.stringify(text)} with a UsageError`, () => {
        assert.throws(
          () => parseSize(text, '--block-size'),
          (err: unknown) =>
            err instanceof UsageError &&
            err.exitCode === 2 &&
            err.code === 'BAD_SIZE' &&
            err.message.startsWith(`invalid --block-size "${text}": `) &&
            !err.message.includes('\n'),
        );
      });
    }
  });
});
