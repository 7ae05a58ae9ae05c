import { UsageError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fs, statSync } from 'node:fs';
import { LocalStaging } from '../../src/rsync/local-staging.js';
import { compressorsOf, progressListener, rsyncCompression, wireBytesOf } from '../../src/rsync/rsync-session.js';
import { makeTempDir } from '../harness/loop.js';
import { haveCommand, haveRoot, requireReal } from '../harness/real.js';

const MiB = 1024 * 1024;

async function* chunksOf(total: number, chunk = MiB, fill = 7): AsyncGenerator<Buffer> {
  for (let at = 0; at < total; at += chunk) yield Buffer.alloc(Math.min(chunk, total - at), fill);
}

describe('rsync/rsync-session: pure parts', () => {
  it("reads rsync's compressor list (this host's rsync and an old one without the section)", function () {
    requireReal(this, 'rsync', haveCommand('rsync'));
    const local = compressorsOf(execFileSync('rsync', ['--version']).toString());
    assert.ok(local.includes('zlib'), `compressors: ${local.join(' ')}`);
    assert.deepEqual(compressorsOf('rsync  version 3.1.3  protocol version 31\nCapabilities:\n    64-bit files\n'), []);
  });

  it('-z only with a fast compressor both ends have, unless asked for', () => {
    const modern = ['zstd', 'lz4', 'zlibx', 'zlib', 'none'];
    assert.deepEqual(rsyncCompression('auto', modern, modern), ['-z', '--compress-choice=zstd']);
    assert.deepEqual(rsyncCompression('auto', modern, ['lz4', 'zlib']), ['-z', '--compress-choice=lz4']);
    assert.deepEqual(rsyncCompression('auto', modern, []), [], 'an rsync < 3.2 only has zlib: no -z');
    assert.deepEqual(rsyncCompression('none', modern, modern), []);
    assert.deepEqual(rsyncCompression('gzip', modern, modern), ['-z', '--compress-choice=zlib']);
    assert.deepEqual(rsyncCompression('gzip', modern, []), ['-z']);
  });

  it('wire bytes from rsync --stats, with or without digit separators', () => {
    assert.equal(wireBytesOf('Number of files: 1\nTotal bytes sent: 1,234,567\nTotal bytes received: 35\n'), 1234567);
    assert.equal(wireBytesOf('Total bytes sent: 42\n'), 42);
    assert.equal(wireBytesOf('nothing here'), undefined);
  });

  it('bytes sent as rsync --progress redraws its line, split anywhere, never counted twice', () => {
    const heard: number[] = [];
    const listen = progressListener((n) => heard.push(n));
    // What rsync 3.2 writes for one file, cut at arbitrary points as a pipe delivers it.
    const out = 'block-3\n\r         32,768   0%    0.00kB/s    0:00:00  \r     11,567,104  36%   10.00MB/s    0:00:01  \r     22,708,224  72%    9.98MB/s    0:00:00  \r     31,457,280 100%   10.26MB/s    0:00:02 (xfr#1, to-chk=0/1)\n';
    for (const piece of [out.slice(0, 30), out.slice(30, 95), out.slice(95, 131), out.slice(131)]) listen(piece);
    assert.deepEqual(heard, [32768, 11567104 - 32768, 22708224 - 11567104, 31457280 - 22708224]);
    // An rsync started again (its master was lost) counts from 0: nothing new until it passes the old mark.
    listen('\r     1,048,576   3%    1.00MB/s    0:00:30  \r     31,457,280 100%   10.26MB/s    0:00:02\n');
    assert.equal(heard.reduce((a, b) => a + b, 0), 31457280);
    listen('Total bytes sent: 31,465,472\n');
    assert.equal(heard.length, 4, 'the stats lines are no progress');
  });
});

describe('engine/local-staging: block files with free-space control', () => {
  it('stages private files of exactly the block length and removes them', async () => {
    const parent = await makeTempDir('ddt-staging-test-');
    const s = await LocalStaging.open(parent, 4 * MiB, 'job-a');
    try {
      assert.match(s.dir, /\/ddt-stage-job-a-/);
      assert.equal(statSync(s.dir).mode & 0o777, 0o700);
      const ac = new AbortController();
      const f = await s.stage('block-0', 3 * MiB + 512, chunksOf(3 * MiB + 512), ac.signal);
      assert.equal(statSync(f.path).size, 3 * MiB + 512);
      assert.equal(statSync(f.path).mode & 0o777, 0o600);
      await f.remove();
      await assert.rejects(s.stage('block-1', 2 * MiB, chunksOf(MiB), ac.signal), /has 1048576 of 2097152 bytes/);
      assert.deepEqual(await fs.readdir(s.dir), [], 'a short block leaves no file');
    } finally {
      await s.close();
    }
    assert.deepEqual(await fs.readdir(parent), []);
  });

  it('refuses a dir that does not exist (exit 2)', async () => {
    await assert.rejects(LocalStaging.open('/nonexistent/ddt', MiB, 'j'), (e: unknown) => e instanceof UsageError && /--local-dir/.test(e.message));
  });

  it('on a small filesystem: refuses when one block cannot fit, waits while staged blocks hold the space', async function () {
    requireReal(this, 'root', haveRoot());
    const mnt = await makeTempDir('ddt-staging-tmpfs-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', mnt]);
    try {
      // Reserve: 10 % of 40 MiB = 4 MiB. 36 MiB usable: two 16 MiB blocks, not three.
      await assert.rejects(LocalStaging.open(mnt, 37 * MiB, 'j'), (e: unknown) => e instanceof UsageError && /a block needs 37\.0 MiB/.test(e.message));
      const s = await LocalStaging.open(mnt, 16 * MiB, 'j');
      const ac = new AbortController();
      const a = await s.stage('block-0', 16 * MiB, chunksOf(16 * MiB), ac.signal);
      await s.stage('block-1', 16 * MiB, chunksOf(16 * MiB), ac.signal);
      let third = false;
      const waiting = s.stage('block-2', 16 * MiB, chunksOf(16 * MiB), ac.signal).then((f) => ((third = true), f));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(third, false, 'a third block must wait for space');
      await a.remove();
      const c = await waiting;
      assert.equal(statSync(c.path).size, 16 * MiB);
      await s.close();
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});
