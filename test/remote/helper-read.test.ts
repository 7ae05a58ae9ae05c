// native/ddt-helper.sh `serve` answering `R` (ddt pull) and `identity`, run directly under
// dash and bash (no SSH): framing, zero detection, hashes of exactly what was read, read errors.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fuseAvailable, withBadSectorDevice } from '../fixtures/bad-device.js';
import { makeTempDir } from '../harness/loop.js';
import { haveCommand, NEEDS, requireReal } from '../harness/real.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../dist/ddt-helper.sh', import.meta.url));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const KiB = 1024;
const MiB = 1024 * KiB;

async function xxh64(b: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('xxhsum', ['-H64']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out.split(/\s+/)[0]!));
    child.stdin.end(b);
  });
}

interface Answer {
  line: string;
  data?: Buffer;
  trailer?: string;
}

/** Send `requests` to `sh ddt-helper.sh serve source workdir` and split the answers by the R framing. */
async function serve(shell: string, source: string, workdir: string, requests: string[]): Promise<Answer[]> {
  const out = await new Promise<Buffer>((resolve, reject) => {
    const child = spawn(shell, [SCRIPT, 'serve', source, workdir]);
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('error', reject);
    child.on('close', () => resolve(Buffer.concat(chunks)));
    child.stdin.end([...requests, 'Q', ''].join('\n'));
  });
  const answers: Answer[] = [];
  const lineAt = (at: number) => {
    const nl = out.indexOf(10, at);
    assert.ok(nl >= 0, `no line end after byte ${at}`);
    return { text: out.subarray(at, nl).toString('latin1'), next: nl + 1 };
  };
  for (let at = 0; at < out.length; ) {
    const head = lineAt(at);
    at = head.next;
    if (!head.text.startsWith('D ')) {
      answers.push({ line: head.text });
      continue;
    }
    const n = Number(head.text.slice(2));
    const data = out.subarray(at, at + n);
    at += n;
    const trailer = lineAt(at);
    at = trailer.next;
    answers.push({ line: head.text, data, trailer: trailer.text });
  }
  return answers;
}

describe('native/ddt-helper.sh R (pull reads) and identity, local', function () {
  this.timeout(60_000);
  let dir: string;
  let wd: string;
  let image: string;
  let bytes: Buffer;

  before(async function () {
    requireReal(this, 'dash, xxhsum', haveCommand('dash') && haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-read-');
    wd = join(dir, 'work');
    await mkdir(wd);
    // 0–1 MiB random; 1–2 MiB zeros; 2–3 MiB zeros but one byte after the first 64 KiB; then 1 MiB + 100 random.
    bytes = Buffer.concat([randomBytes(MiB), Buffer.alloc(MiB), Buffer.alloc(MiB), randomBytes(MiB + 100)]);
    bytes[2 * MiB + 70_000] = 7;
    image = join(dir, 'source.img');
    await writeFile(image, bytes);
  });

  for (const shell of ['dash', 'bash']) {
    it(`${shell}: data blocks come framed with the hash of exactly those bytes; zero blocks as Z without data`, async () => {
      const a = await serve(shell, image, wd, [
        `R 0 ${MiB} xxh64`,
        `R ${MiB} ${MiB} xxh64`,
        `R ${2 * MiB} ${MiB} sha256`,
        `R ${3 * MiB} ${MiB + 100} xxh64`,
        `R 12345 1000 sha256`,
      ]);
      assert.equal(a.length, 5);
      const slice = (off: number, len: number) => bytes.subarray(off, off + len);
      assert.equal(a[0]!.line, `D ${MiB}`);
      assert.ok(a[0]!.data!.equals(slice(0, MiB)));
      assert.equal(a[0]!.trailer, `OK ${await xxh64(slice(0, MiB))}`);
      assert.equal(a[1]!.line, `Z ${await xxh64(Buffer.alloc(MiB))}`, 'an all-zero block travels as Z, no data');
      assert.equal(a[2]!.line, `D ${MiB}`, 'zeros up front but data later: sent as data');
      assert.equal(a[2]!.trailer, `OK ${sha256(slice(2 * MiB, MiB))}`);
      assert.ok(a[2]!.data!.equals(slice(2 * MiB, MiB)));
      assert.equal(a[3]!.trailer, `OK ${await xxh64(slice(3 * MiB, MiB + 100))}`);
      assert.equal(a[4]!.trailer, `OK ${sha256(slice(12345, 1000))}`);
    });
  }

  it('a range past the end: the frame is kept (zero-padded) and an ERR trailer says so; the next request still works', async () => {
    const end = bytes.length;
    const a = await serve('dash', image, wd, [`R ${end - 100} 4096 xxh64`, `R 0 4096 sha256`]);
    assert.equal(a[0]!.line, 'D 4096');
    assert.equal(a[0]!.data!.length, 4096);
    assert.match(a[0]!.trailer!, /^ERR read short: 100 of 4096 bytes \(the source ends/);
    assert.equal(a[1]!.trailer, `OK ${sha256(bytes.subarray(0, 4096))}`);
  });

  it('refuses an unknown algorithm before any data, and keeps serving', async () => {
    const a = await serve('dash', image, wd, ['R 0 4096 md5', 'R 0 10 sha256']);
    assert.equal(a[0]!.line, 'ERR unknown algo md5');
    assert.equal(a[1]!.trailer, `OK ${sha256(bytes.subarray(0, 10))}`);
  });

  it('identity: size, inode, mtime of a file; readable', async () => {
    const { stdout } = await run('dash', [SCRIPT, 'identity', image]);
    const kv = Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const st = await stat(image, { bigint: true });
    assert.equal(kv.kind, 'file');
    assert.equal(kv.size, String(bytes.length));
    assert.equal(kv.ino, st.ino.toString());
    assert.equal(kv.dev, st.dev.toString());
    assert.equal(kv.mtime, String(st.mtimeMs / 1000n));
    assert.equal(kv.readable, '1');
    const missing = await run('dash', [SCRIPT, 'identity', join(dir, 'nope')]);
    assert.match(missing.stdout, /^kind=other$/m);
  });

  it('an unreadable sector: the frame is kept, the trailer reports the read error, later blocks still read', async function () {
    requireReal(this, NEEDS.fuse, fuseAvailable());
    const img = join(dir, 'bad.img');
    const data = randomBytes(2 * MiB);
    await writeFile(img, data);
    await withBadSectorDevice(img, [1000], async (dev) => {
      const a = await serve('dash', dev, wd, [`R 0 ${MiB} xxh64`, `R ${MiB} ${MiB} xxh64`]);
      assert.equal(a[0]!.line, `D ${MiB}`);
      assert.equal(a[0]!.data!.length, MiB);
      assert.match(a[0]!.trailer!, /^ERR read failed: .*(Input\/output error|error reading)/);
      assert.equal(a[1]!.trailer, `OK ${await xxh64(data.subarray(MiB))}`);
    });
  });
});
