import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkBoundedFile, readBoundedFile } from '../../src/transport/bounded-file.js';
import { UsageError } from '../harness/errors.js';

describe('transport/bounded-file: files the user points at are read with a bound', () => {
  let dir: string;
  const f = { what: 'identity file', max: 64 * 1024 };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ddt-bounded-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  it('a regular file within the bound is read; a missing one is undefined; /dev/null is empty', async () => {
    const p = join(dir, 'key');
    await writeFile(p, 'x'.repeat(64 * 1024));
    assert.equal(readBoundedFile(p, f)!.length, 64 * 1024);
    assert.equal(readBoundedFile(join(dir, 'nope'), f), undefined);
    assert.equal(readBoundedFile('/dev/null', f)!.length, 0);
  });

  it('a device, a directory, a FIFO or a file over the bound: exit 2 naming it, nothing read', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const big = join(dir, 'big');
    await writeFile(big, '');
    await truncate(big, 64 * 1024 + 1);
    for (const [p, why] of [['/dev/zero', 'not a regular file'], [dir, 'not a regular file'], [fifo, 'not a regular file'], [big, 'larger than 64 KiB']]) {
      assert.throws(() => readBoundedFile(p!, f), (err: Error) => err instanceof UsageError && err.message.startsWith(`identity file ${p} is ${why}`));
      assert.throws(() => checkBoundedFile(p!, f), UsageError);
    }
  });
});
