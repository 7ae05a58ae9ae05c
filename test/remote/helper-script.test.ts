// native/ddt-helper.sh run directly under dash (no SSH): the framing contract of `serve`.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseProbe } from '../../src/remote/probe.js';
import { makeTempDir } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../dist/ddt-helper.sh', import.meta.url));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Feed `input` to `dash ddt-helper.sh serve target workdir [extra…]`, return its answer lines. */
function serve(target: string, workdir: string, input: Buffer, shell = 'dash', env: NodeJS.ProcessEnv = process.env, extra: string[] = []): Promise<{ lines: string[]; code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(shell, [SCRIPT, 'serve', target, workdir, ...extra], { env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ lines: out.split('\n').filter(Boolean), code, stderr: err }));
    // A helper that refuses its arguments exits before reading: EPIPE on its stdin is expected.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

const frame = (op: string, off: number, len: number, algo: string, body?: Buffer) =>
  Buffer.concat([Buffer.from(`${op} ${off} ${len} ${algo}\n`), body ?? Buffer.alloc(0)]);

describe('native/ddt-helper.sh serve (dash, local)', function () {
  this.timeout(60_000);
  let dir: string;
  let wd: string;

  before(async function () {
    requireReal(this, 'dash, xxhsum', haveCommand('dash') && haveCommand('xxhsum'));
    dir = await makeTempDir('ddt-script-');
    wd = join(dir, 'work');
    await mkdir(wd);
  });

  it('dd iflag=fullblock,count_bytes takes exactly LEN bytes, whatever the block size', async () => {
    const body = randomBytes(3_000_000);
    const rest = randomBytes(5000);
    for (const bs of ['1M', '4096', '7']) {
      const { stdout } = await run('dash', [
        '-c',
        `{ cat "$1"; cat "$2"; } | { dd of=/dev/null bs=${bs} iflag=fullblock,count_bytes count=3000000 2>/dev/null; cat; } | sha256sum`,
        'sh',
        await tmp('body', body),
        await tmp('rest', rest),
      ]);
      assert.equal(stdout.split(' ')[0], sha256(rest), `bs=${bs}: the bytes after the frame stay in the pipe`);
    }
  });

  async function tmp(name: string, b: Buffer): Promise<string> {
    const p = join(dir, name);
    await writeFile(p, b);
    return p;
  }

  // dash is Debian's sh; bash is sh on other distributions. Both must keep the framing, with
  // perl raising the pipes to 1 MiB and without.
  for (const [shell, perl] of [['dash', true], ['bash', true], ['dash', false]] as const) {
    it(`${shell}${perl ? '' : ' without perl'}: answers W, Z and H in order; checksums are what xxhsum -H64 / sha256sum print`, async () => {
      const target = await tmp('t.img', randomBytes(8 << 20));
      const a = randomBytes(3_000_000);
      const b = randomBytes(20480);
      const input = Buffer.concat([
        frame('W', 12345, a.length, 'xxh64', a),
        frame('W', 4 << 20, b.length, 'sha256', b),
        frame('Z', 0, 8192, 'sha256'),
        frame('H', 12345, a.length, 'sha256'),
        frame('W', 5 << 20, 1, 'xxh64', Buffer.from('x')),
        frame('H', 0, 0, 'sha256'),
        Buffer.from('Q\n'),
        frame('W', 0, 3, 'xxh64', Buffer.from('zzz')), // after Q: never executed
      ]);
      const { lines, code } = await serve(target, wd, input, shell, perl ? process.env : { ...process.env, DDT_HELPER_NO_PERL: '1' });
      assert.equal(code, 0);
      const xxh = async (buf: Buffer) => (await run('sh', ['-c', 'xxhsum -H64 < "$1"', 'sh', await tmp('h', buf)])).stdout.split(' ')[0];
      assert.deepEqual(lines, [
        `OK ${await xxh(a)}`,
        `OK ${sha256(b)}`,
        `OK ${sha256(Buffer.alloc(8192))}`,
        `OK ${sha256(a)}`,
        `OK ${await xxh(Buffer.from('x'))}`,
        `OK ${sha256(Buffer.alloc(0))}`,
      ]);
      const t = await readFile(target);
      assert.ok(t.subarray(12345, 12345 + a.length).equals(a));
      assert.ok(t.subarray(4 << 20, (4 << 20) + b.length).equals(b));
      assert.ok(t.subarray(0, 8192).equals(Buffer.alloc(8192)));
      assert.equal(t[5 << 20], 'x'.charCodeAt(0));
      assert.equal(t.length, 8 << 20);
    });
  }

  /** `X` frames of a block: `D` + bytes, or `Z` (a length only); header as the client sends it. */
  const xframes = (parts: Array<Buffer | number>) =>
    Buffer.concat(parts.flatMap((p) => (typeof p === 'number' ? [Buffer.from(`Z${String(p).padStart(14)}\n`)] : [Buffer.from(`D${String(p.length).padStart(14)}\n`), p])));

  for (const perl of [true, false]) {
    it(`X${perl ? '' : ' without perl'}: frames make the block (zeros from their length), over old data; then the next request`, async () => {
      const target = await tmp('x.img', randomBytes(8 << 20));
      const a = randomBytes(1 << 20);
      const b = randomBytes(300_000);
      const block = Buffer.concat([Buffer.alloc(2 << 20), a, Buffer.alloc(1 << 20), b, Buffer.alloc(4096)]);
      const input = Buffer.concat([
        Buffer.from(`X 4096 ${block.length} sha256\n`),
        xframes([2 << 20, a, 1 << 20, b, 4096]),
        Buffer.from(`X 0 4096 xxh64 defer\n`),
        xframes([4096]),
        frame('H', 4096, block.length, 'sha256'),
        Buffer.from('Q\n'),
      ]);
      const { lines, code } = await serve(target, wd, input, 'dash', perl ? process.env : { ...process.env, DDT_HELPER_NO_PERL: '1' });
      assert.equal(code, 0);
      const xxhZero = (await run('sh', ['-c', 'head -c 4096 /dev/zero | xxhsum -H64'])).stdout.split(' ')[0];
      assert.deepEqual(lines, [`OK ${sha256(block)}`, `OK ${xxhZero} deferred`, `OK ${sha256(block)}`]);
      const t = await readFile(target);
      assert.ok(t.subarray(4096, 4096 + block.length).equals(block));
      assert.ok(t.subarray(0, 4096).equals(Buffer.alloc(4096)));
    });

    it(`X${perl ? '' : ' without perl'}: a failing write still takes every frame; a bad frame header ends the worker`, async () => {
      const a = randomBytes(3_000_000);
      const env = perl ? process.env : { ...process.env, DDT_HELPER_NO_PERL: '1' };
      const full = await serve('/dev/full', wd, Buffer.concat([Buffer.from(`X 0 ${a.length + 8192} xxh64\n`), xframes([a, 8192]), frame('Z', 0, 10, 'xxh64'), Buffer.from('N 0 0\nQ\n')]), 'dash', env);
      assert.equal(full.lines.length, 3, full.lines.join('|'));
      assert.match(full.lines[0]!, /^ERR write failed: .*No space left on device/);
      assert.match(full.lines[1]!, /^ERR .*No space left on device/);
      assert.equal(full.lines[2], 'OK');
      const target = await tmp('xbad.img', Buffer.alloc(8192));
      for (const bad of [Buffer.from('D 12x\n'), Buffer.from(`D${'9000'.padStart(14)}\n`), Buffer.from(`Q${'10'.padStart(14)}\n`)]) {
        const r = await serve(target, wd, Buffer.concat([Buffer.from('X 0 4096 xxh64\n'), bad, randomBytes(4096), Buffer.from('N 0 0\n')]), 'dash', env);
        assert.equal(r.lines.length, 1, r.lines.join('|'));
        assert.match(r.lines[0]!, /^ERR sparse write: frames unreadable/);
        assert.equal(r.code, 1);
      }
      assert.ok((await readFile(target)).subarray(4096).equals(Buffer.alloc(4096)), 'nothing written past the block');
    });
  }

  /** A work dir with ddt-hash as hasher-install leaves it: the read-backs go through it. */
  async function hasherWork(ctx: Mocha.Context): Promise<string> {
    const build = fileURLToPath(new URL(`../../dist/native/ddt-hash-${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}`, import.meta.url));
    requireReal(ctx, 'ddt-hash (npm run build)', existsSync(build));
    const work = join(dir, 'work-hasher');
    await mkdir(work, { recursive: true });
    await writeFile(join(work, 'ddt-hash'), await readFile(build), { mode: 0o755 });
    await writeFile(join(work, 'ddt-hash.ok'), '');
    return work;
  }

  for (const withHasher of [false, true]) {
  it(`defer${withHasher ? ', read back by ddt-hash' : ''}: an O_DIRECT write or zero write skips its flush and says so, a buffered one is flushed; Y flushes`, async function () {
    // With ddt-hash the answers must not change.
    const work = withHasher ? await hasherWork(this) : wd;
    const target = await tmp(`defer${withHasher ? '-h' : ''}.img`, randomBytes(8 << 20));
    const a = randomBytes(1 << 20);
    const b = randomBytes(5000);
    const input = Buffer.concat([
      Buffer.from(`W 0 ${a.length} sha256 defer\n`),
      a,
      Buffer.from('Z 2097152 8192 sha256 defer\n'),
      Buffer.from(`W ${(3 << 20) + 5} ${b.length} sha256 defer\n`), // not 4 KiB-aligned: buffered, so flushed
      b,
      frame('W', 4 << 20, 4096, 'sha256', a.subarray(0, 4096)), // no defer asked: flushed
      Buffer.from('Y 0 0\n'),
      Buffer.from('H 0 4096 sha256 defer\n'), // only W and Z take it
      Buffer.from('Q\n'),
    ]);
    const { lines, code } = await serve(target, work, input);
    assert.equal(code, 0);
    assert.deepEqual(lines, [
      `OK ${sha256(a)} deferred`,
      `OK ${sha256(Buffer.alloc(8192))} deferred`,
      `OK ${sha256(b)}`,
      `OK ${sha256(a.subarray(0, 4096))}`,
      'OK',
      'ERR bad request header',
    ]);
    const t = await readFile(target);
    assert.ok(t.subarray(0, a.length).equals(a));
    assert.ok(t.subarray(2 << 20, (2 << 20) + 8192).equals(Buffer.alloc(8192)));
    assert.ok(t.subarray((3 << 20) + 5, (3 << 20) + 5 + b.length).equals(b));
  });
  }

  for (const withHasher of [false, true]) {
  it(`parts, then S flushes and proves the whole block${withHasher ? ' (ddt-hash flushes and reads back)' : ''}; a flush that fails is ERR`, async function () {
    const work = withHasher ? await hasherWork(this) : wd;
    const old = randomBytes(3 << 20);
    const target = await tmp(`parts${withHasher ? '-h' : ''}.img`, old);
    const a = randomBytes(1 << 20);
    const b = randomBytes(5000);
    const input = Buffer.concat([frame('P', 1 << 20, a.length, '', a), frame('P', (2 << 20) + 7, b.length, '', b), Buffer.from(`S 0 ${old.length} sha256\n`), Buffer.from('Q\n')]);
    const { lines, code } = await serve(target, work, input);
    const want = Buffer.from(old);
    a.copy(want, 1 << 20);
    b.copy(want, (2 << 20) + 7);
    assert.equal(code, 0);
    assert.deepEqual(lines, ['OK', 'OK', `OK ${sha256(want)}`]);
    assert.ok((await readFile(target)).equals(want));
    // fsync of a character device fails (EINVAL): the flush, not the read-back, is blamed.
    const full = await serve('/dev/full', work, Buffer.from('S 0 4096 sha256\nQ\n'));
    assert.match(full.lines[0] ?? '', /^ERR flush failed: .*Invalid argument/);
  });
  }

  it('serve takes the host facts the probe found instead of asking again; facts it does not know are refused (exit 2)', async () => {
    const target = await tmp('facts.img', randomBytes(1 << 20));
    const answer = (await run('dash', [SCRIPT, 'probe', target, dir])).stdout;
    const probed = parseProbe(answer).hostFacts;
    assert.ok(probed, 'the probe gives the facts');
    assert.equal(parseProbe(answer.replace(/^dd_stats=.*$/m, '')).hostFacts, undefined, 'none where the answer lacks a key');
    assert.match(probed, /(^|,)tools=xxhsum(\+|,)/);
    const a = randomBytes(8192);
    const input = Buffer.concat([frame('W', 4096, a.length, 'xxh64', a), frame('H', 4096, a.length, 'sha256'), Buffer.from('Q\n')]);
    const ok = await serve(target, wd, input, 'dash', process.env, ['sparse', probed]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.lines[1], `OK ${sha256(a)}`);
    assert.match(ok.lines[0]!, /^OK [0-9a-f]{16}$/);
    // Facts, not a fresh look: xxhsum works here, but these facts say only sha256sum does.
    const only = await serve(target, wd, Buffer.from('H 0 4096 xxh64\nH 0 4096 sha256\nQ\n'), 'dash', process.env, ['write', 'tools=sha256sum,perl=0,conv=nocreat,stats=bytes,nocache=0,punch=0,zeroout=0']);
    assert.match(only.lines[0]!, /^ERR missing tool xxhsum/);
    const before = await readFile(target);
    assert.equal(only.lines[1], `OK ${sha256(before.subarray(0, 4096))}`);
    for (const bad of ['tools=md5,perl=1,conv=,stats=bytes,nocache=1,punch=1,zeroout=1', 'perl=1', 'tools=,colour=blue']) {
      const r = await serve(target, wd, input, 'dash', process.env, ['write', bad]);
      assert.equal(r.code, 2, bad);
      assert.deepEqual(r.lines, []);
      assert.match(r.stderr, /ddt-helper: (unknown hash tool in facts|facts lack|unknown fact)/);
    }
    assert.ok((await readFile(target)).equals(before), 'nothing written under facts refused');
  });

  it('a failing write still consumes its frame: the next request is read correctly', async () => {
    const a = randomBytes(3_000_000);
    const { lines } = await serve('/dev/full', wd, Buffer.concat([frame('W', 0, a.length, 'xxh64', a), frame('W', 0, 5, 'xxh64', Buffer.from('abcde')), frame('Z', 0, 10, 'xxh64'), Buffer.from('Q\n')]));
    assert.equal(lines.length, 3);
    for (const l of lines) assert.match(l, /^ERR .*No space left on device/);
    const y = await serve(join(dir, 'no-such-target'), wd, Buffer.from('Y 0 0\nQ\n'));
    assert.match(y.lines[0] ?? '', /^ERR flush failed: .*No such file/, 'a flush that fails says so');
  });

  it('never creates a missing target, reports bad requests, and stops on a header without length', async () => {
    const missing = join(dir, 'does-not-exist');
    const { lines } = await serve(missing, wd, Buffer.concat([frame('W', 0, 4, 'xxh64', Buffer.from('abcd')), frame('H', 0, 4, 'xxh64'), Buffer.from('W x 3 xxh64\nabc'), frame('H', 0, 1, 'bogus'), Buffer.from('W 0 nolen\n')]));
    assert.equal(existsSync(missing), false);
    assert.match(lines[0], /^ERR write failed: .*No such file/);
    assert.match(lines[1], /^ERR read-back failed/);
    assert.equal(lines[2], 'ERR bad request header');
    assert.equal(lines[3], 'ERR unknown algo bogus');
    assert.equal(lines[4], 'ERR bad request header');
    assert.equal(lines.length, 5);
  });

  it('a range past the end of a file is an error, not the hash of fewer bytes', async () => {
    const target = await tmp('short.img', randomBytes(4096));
    const { lines } = await serve(target, wd, frame('H', 0, 8192, 'xxh64'));
    assert.match(lines[0], /^ERR read-back short: 4096 of 8192/);
  });

  it('finds out its facts right after its first N, and opens the target for writing only at its first write', async function () {
    requireReal(this, 'strace', haveCommand('strace'));
    const target = join(dir, 'setup-target');
    await writeFile(target, Buffer.alloc(1 << 20));
    /** The target's opens (openat flags) by the worker and its children, for `input`. */
    const opens = async (name: string, input: Buffer): Promise<string[]> => {
      const log = join(dir, `${name}.strace`);
      await run('sh', ['-c', 'strace -f -qq -e trace=openat -o "$1" dash "$2" serve "$3" "$4" <"$5" >/dev/null', 'sh', log, SCRIPT, target, wd, await tmp(`${name}.in`, input)]);
      const quoted = JSON.stringify(target);
      return (await readFile(log, 'utf8')).split('\n').filter((l) => l.includes(`openat(AT_FDCWD, ${quoted}, `)).map((l) => l.slice(l.indexOf(quoted) + quoted.length + 2).split(/[,)]/)[0]!);
    };
    const writing = (flags: string) => /O_WRONLY|O_RDWR/.test(flags);
    const n = await opens('n', Buffer.from('N 0 0\n'));
    assert.ok(n.some((f) => f.includes('O_DIRECT')), `after N alone, its O_DIRECT read test ran: ${n.join(' ')}`);
    assert.equal(n.filter(writing).length, 0, `nothing opened for writing after N: ${n.join(' ')}`);
    const h = await opens('h', Buffer.from('N 0 0\nH 0 4096 sha256\n'));
    assert.equal(h.filter(writing).length, 0, `nothing opened for writing by a hash: ${h.join(' ')}`);
    const p = await opens('p', Buffer.concat([Buffer.from('N 0 0\nP 0 4096\n'), randomBytes(4096)]));
    assert.ok(p.includes('O_WRONLY|O_DIRECT'), `its first write tests O_DIRECT writes first: ${p.join(' ')}`);
    assert.ok(p.filter(writing).length >= 2, `and writes: ${p.join(' ')}`);
  });

  it('records its PID in WORKDIR/pids and refuses relative paths', async () => {
    const target = await tmp('pid.img', Buffer.alloc(4096));
    await serve(target, wd, Buffer.from('Q\n'));
    assert.match(await readFile(join(wd, 'pids'), 'utf8'), /^(\d+\n)+$/);
    const bad = await serve('relative.img', wd, Buffer.from('Q\n'));
    assert.equal(bad.code, 2);
  });

  it('hasher-install keeps a hasher only as <work dir base>/.hashers/ddt-hash-*: any other CACHE is exit 2, nothing kept', async () => {
    const base = join(dir, 'hasher-base');
    const work = join(base, 'job-1');
    await mkdir(work, { recursive: true });
    await writeFile(join(work, '.ddt-workdir'), '');
    for (const cache of [
      join(dir, 'elsewhere', '.hashers', 'ddt-hash-x86_64-0123'),
      `${base}/job-1/../.hashers/ddt-hash-x86_64-0123`, // not normalised: the dir must be the base's own
      join(base, '.hashers', 'evil'),
      join(base, '.hashers', 'ddt-hash-a b'),
      join(base, '.hashers', 'ddt-hash-'),
    ]) {
      const r = await run('dash', [SCRIPT, 'hasher-install', work, 'EXPECT', cache]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(r.code, 2, cache);
      assert.match(r.stderr, /^ddt-helper: (not a hasher cache name|hasher cache outside the work dir base): /, cache);
    }
    const r = await run('dash', [SCRIPT, 'hasher-install', work, 'EXPECT', join(base, '.hashers', 'ddt-hash-x86_64-0123'), 'from-stdin']).catch((e: { code: number }) => e);
    assert.equal((r as { code: number }).code, 2);
    assert.ok(!existsSync(join(base, '.hashers')) && !existsSync(join(work, 'ddt-hash.new')), 'nothing made');
  });
});
