// RemoteSource (ddt pull) through real SSH channels into ddt-helper.sh workers.
import { SourceReadError } from '../harness/errors.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { initChecksums } from '../../src/checksum/hasher.js';
import type { ChecksumAlgo } from '../../src/checksum/types.js';
import type { BlockPayload } from '../../src/block/types.js';
import { RemoteHelper } from '../../src/remote/helper.js';
import { RemoteSource, remotePathInfo } from '../../src/remote/remote-source.js';
import { SshPool } from '../../src/transport/ssh-pool.js';
import { makeTempDir } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';
import { poolOptions, sshdAvailable, startSshd, type TestSshd } from '../harness/sshd.js';

const run = promisify(execFile);
const MiB = 1 << 20;

async function toolHash(file: string, offset: number, length: number, algo: ChecksumAlgo): Promise<string> {
  const tool = algo === 'xxh64' ? 'xxhsum -H64' : 'sha256sum';
  const { stdout } = await run('sh', ['-c', `dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip=${offset} count=${length} 2>/dev/null | ${tool}`, 'sh', file]);
  return stdout.split(/\s+/)[0]!;
}

async function collect(p: BlockPayload): Promise<Buffer> {
  assert.equal(p.kind, 'data');
  const parts: Buffer[] = [];
  if (p.kind === 'data') for await (const c of p.chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('remote/remote-source (real sshd)', function () {
  this.timeout(120_000);
  let sshd: TestSshd;
  let pool: SshPool;
  let helper: RemoteHelper;
  let dir: string;
  let file: string;
  let bytes: Buffer;
  const signal = new AbortController().signal;

  before(async function () {
    requireReal(this, NEEDS.sshd, sshdAvailable());
    requireReal(this, 'xxhsum', haveCommand('xxhsum'));
    await initChecksums();
    sshd = await startSshd();
    pool = await SshPool.open(poolOptions(sshd, { connections: 2, channelsPerConnection: 2 }));
    helper = await RemoteHelper.install(pool, { jobId: 'remote-source-test' });
    dir = await makeTempDir('ddt-remote-source-');
    file = join(dir, 'source.img');
    bytes = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(2 * MiB), randomBytes(MiB + 512)]);
    await writeFile(file, bytes);
  });
  after(async () => {
    await helper?.cleanup().catch(() => {});
    await pool?.close();
    await sshd?.stop();
  });

  it('reads data blocks byte for byte with the source host\'s checksum; zero blocks without data', async () => {
    const reader = await RemoteSource.open(helper, file, pool, { workers: 4, signal });
    try {
      assert.equal(reader.capacity, 4);
      const blocks = [0, 1, 2, 3, 4, 5].map((index) => ({ index, offset: index * MiB, length: index === 5 ? MiB + 512 : MiB }));
      const results = await Promise.all(
        blocks.map(async (b) => {
          const opened = await reader.openBlock(b, 'xxh64');
          const data = opened.payload.kind === 'zero' ? undefined : await collect(opened.payload);
          return { b, zero: opened.payload.kind === 'zero', data, sum: await opened.checksum };
        }),
      );
      for (const r of results) {
        const want = bytes.subarray(r.b.offset, r.b.offset + r.b.length);
        assert.equal(r.zero, r.b.index === 3 || r.b.index === 4, `block ${r.b.index}`);
        if (r.data) assert.ok(r.data.equals(want), `block ${r.b.index} bytes`);
        assert.equal(r.sum, await toolHash(file, r.b.offset, r.b.length, 'xxh64'));
      }
      const h = await reader.hashBlock({ index: 1, offset: MiB, length: MiB }, 'sha256');
      assert.equal(h.checksum, await toolHash(file, MiB, MiB, 'sha256'));
    } finally {
      await reader.close();
    }
  });

  it('a payload abandoned half-way costs its worker, not the next block', async () => {
    const reader = await RemoteSource.open(helper, file, pool, { workers: 1, signal });
    try {
      const opened = await reader.openBlock({ index: 0, offset: 0, length: 3 * MiB }, 'xxh64');
      assert.equal(opened.payload.kind, 'data');
      if (opened.payload.kind === 'data') {
        for await (const chunk of opened.payload.chunks) {
          assert.ok(chunk.length > 0);
          break; // the consumer gives up after one chunk
        }
      }
      await assert.rejects(opened.checksum, /not (fully )?consumed/);
      const next = await reader.openBlock({ index: 5, offset: 5 * MiB, length: MiB }, 'xxh64');
      assert.ok((await collect(next.payload)).equals(bytes.subarray(5 * MiB, 6 * MiB)));
      assert.equal(await next.checksum, await toolHash(file, 5 * MiB, MiB, 'xxh64'));
    } finally {
      await reader.close();
    }
  });

  it('a range past the end of the source is a source read error (the run stops, resumable)', async () => {
    const reader = await RemoteSource.open(helper, file, pool, { workers: 1, signal });
    try {
      const opened = await reader.openBlock({ index: 9, offset: bytes.length - 512, length: MiB }, 'xxh64');
      await collect(opened.payload);
      await assert.rejects(opened.checksum, (err: unknown) => err instanceof SourceReadError && /read short/.test((err as Error).message));
      // Framing intact: the same worker serves the next block.
      const next = await reader.openBlock({ index: 0, offset: 0, length: 4096 }, 'sha256');
      await collect(next.payload);
      assert.equal(await next.checksum, await toolHash(file, 0, 4096, 'sha256'));
    } finally {
      await reader.close();
    }
  });

  it('an abort drops the channels: a pending block rejects at once', async () => {
    const ac = new AbortController();
    const reader = await RemoteSource.open(helper, file, pool, { workers: 1, signal: ac.signal });
    const opened = await reader.openBlock({ index: 0, offset: 0, length: 3 * MiB }, 'xxh64');
    ac.abort(new Error('stop'));
    await assert.rejects(opened.checksum);
    await assert.rejects(reader.openBlock({ index: 1, offset: MiB, length: MiB }, 'xxh64'));
    await reader.close();
  });

  it('identity: size, device, inode and mtime of a file', async () => {
    const info = await remotePathInfo(helper, file);
    assert.equal(info.kind, 'file');
    assert.equal(info.size, bytes.length);
    assert.equal(info.readable, true);
    assert.match(`${info.identity.dev}:${info.identity.ino}`, /^\d+:\d+$/);
    assert.equal(typeof info.identity.mtimeMs, 'number');
    assert.equal((await remotePathInfo(helper, join(dir, 'missing'))).kind, 'other');
  });
});
