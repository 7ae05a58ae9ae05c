// ddt-hash, the streaming hasher the remote helper runs: its answers are exactly what this side
// computes for the same bytes (xxh64 as xxhsum -H64 prints it, sha256 as sha256sum), for odd
// block and unit sizes, several runs, a range past the end, on x86_64 with and without the SHA
// instructions, and the aarch64 build under qemu where the emulator is installed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import { arch } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlockDigester } from '../../src/checksum/block-digest.js';
import { initChecksums } from '../../src/checksum/hasher.js';
import type { ChecksumAlgo } from '../../src/checksum/types.js';
import { hasherBuild } from '../../src/checksum/ddt-hash.js';
import { selfTestExpectation } from '../../src/remote/native-hasher.js';
import { makeTempDir } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';

/** `ddt-hash ranges FILE UNIT UALGO ALGO` with `runs` on stdin, through `prefix` (an emulator). */
function run(prefix: string[], bin: string, args: string[], input: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const [cmd, ...rest] = [...prefix, bin, ...args];
    const child = execFile(cmd!, rest, { env: { ...process.env, ...env }, maxBuffer: 64 << 20 }, (err, out, errOut) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: errOut }),
    );
    child.on('error', reject);
    child.stdin!.on('error', () => undefined); // refused before reading its input
    child.stdin!.end(input);
  });
}

/** What the answers must be: per block its unit lines (where it has more than one unit), then its own. */
function expected(data: Buffer, runs: [number, number, number][], unit: number, ualgo: ChecksumAlgo, algo: ChecksumAlgo): string {
  const lines: string[] = [];
  for (const [offset, length, block] of runs) {
    for (let at = offset; at < offset + length; at += block) {
      const len = Math.min(block, offset + length - at);
      const bytes = data.subarray(at, at + len);
      if (bytes.length < len) {
        const units = len > unit ? Math.ceil(len / unit) : 0;
        for (let i = 0; i <= units; i++) lines.push('ERR');
        continue;
      }
      const d = new BlockDigester(len, algo, { unit, algo: ualgo });
      d.update(bytes);
      const { checksum, units } = d.digest();
      lines.push(...(units ?? []).map((u) => `OK ${u}`), `OK ${checksum}`);
    }
  }
  return lines.join('\n') + '\n';
}

const errLinesCut = (out: string) => out.replace(/^ERR .*$/gm, 'ERR');

describe('ddt-hash (the streaming hasher)', function () {
  let dir: string;
  let file: string;
  let data: Buffer;
  const runs: [number, number, number][] = [
    [0, 9 * 1048576 + 4097, 4 * 1048576], // blocks bigger than the 4 MiB reads, a short last one
    [10 * 1048576 + 1, 3 * 1048576 + 7, 1048576 + 3], // unaligned: buffered reads
    [15 * 1048576 - 8192, 16384, 4096], // a run past the end: ERR lines, the count kept
  ];

  before(async () => {
    await initChecksums();
    dir = await makeTempDir('ddt-native-hasher-');
    file = join(dir, 'data.bin');
    data = randomBytes(15 * 1048576 - 4096);
    await fs.writeFile(file, data);
  });

  const input = runs.map((r) => r.join(' ')).join('\n') + '\n';
  const builds: { name: string; arch: string; prefix: () => string[]; env?: NodeJS.ProcessEnv; needs?: string }[] = [
    { name: 'x86_64', arch: 'x86_64', prefix: () => [] },
    { name: 'x86_64, portable sha256', arch: 'x86_64', prefix: () => [], env: { DDT_HASH_PORTABLE: '1' } },
    { name: 'aarch64 under qemu (ARMv8 SHA2)', arch: 'aarch64', prefix: () => ['qemu-aarch64-static', '-cpu', 'max'], needs: 'qemu-aarch64-static' },
    { name: 'aarch64 under qemu, portable sha256', arch: 'aarch64', prefix: () => ['qemu-aarch64-static'], env: { DDT_HASH_PORTABLE: '1' }, needs: 'qemu-aarch64-static' },
  ];
  for (const b of builds) {
    // Both xxh64: a unit and its block share one pass where they line up in 32-byte stripes
    // (units of 64 KiB), one after the other where they don't (units of 1000003 bytes).
    for (const [ualgo, algo, unit] of [
      ['xxh64', 'sha256', 1000003],
      ['sha256', 'xxh64', 1000003],
      ['xxh64', 'xxh64', 1000003],
      ['xxh64', 'xxh64', 65536],
    ] as [ChecksumAlgo, ChecksumAlgo, number][]) {
      it(`${b.name}: ${ualgo} units of ${unit} bytes, ${algo} blocks, as this side computes them`, async function () {
        if (b.arch === 'x86_64' && arch() !== 'x64' && !b.needs) this.skip();
        const bin = fileURLToPath(hasherBuild(b.arch));
        requireReal(this, `the ${b.arch} build of ddt-hash (npm run build with ${b.arch === 'x86_64' ? 'gcc' : 'gcc-aarch64-linux-gnu'})`, existsSync(bin));
        if (b.needs) requireReal(this, b.needs, haveCommand(b.needs));
        const r = await run(b.prefix(), bin, ['ranges', file, String(unit), ualgo, algo], input, b.env);
        assert.equal(r.code, 0, r.err);
        assert.equal(errLinesCut(r.out), expected(data, runs, unit, ualgo, algo));
      });
    }
  }

  it('`buffered` (a local source, maybe in the page cache already) gives the same answers', async function () {
    const bin = fileURLToPath(hasherBuild(arch() === 'arm64' ? 'aarch64' : 'x86_64'));
    requireReal(this, 'ddt-hash built for this machine', existsSync(bin));
    const r = await run([], bin, ['ranges', file, '1000003', 'xxh64', 'sha256', 'buffered'], input);
    assert.equal(r.code, 0, r.err);
    assert.equal(errLinesCut(r.out), expected(data, runs, 1000003, 'xxh64', 'sha256'));
  });

  it('the self-test the helper runs passes on this machine', async function () {
    const bin = fileURLToPath(hasherBuild(arch() === 'arm64' ? 'aarch64' : 'x86_64'));
    requireReal(this, 'ddt-hash built for this machine', existsSync(bin));
    const script = randomBytes(40_123);
    const path = join(dir, 'script');
    await fs.writeFile(path, script);
    let out = '';
    for (const algos of [['xxh64', 'sha256'], ['sha256', 'xxh64']]) {
      const r = await run([], bin, ['ranges', path, '1000', ...algos], `0 ${script.length} 7001\n`);
      out += r.out;
    }
    assert.equal(out.replace(/\n/g, ' '), selfTestExpectation(script));
  });

  it('`pipes` raises the pipes on its stdin and stdout to 1 MiB, for the shell that runs it', async function () {
    const bin = fileURLToPath(hasherBuild(arch() === 'arm64' ? 'aarch64' : 'x86_64'));
    requireReal(this, 'ddt-hash built for this machine, perl', existsSync(bin) && haveCommand('perl'));
    // F_GETPIPE_SZ (1032) of the shell's stdout after ddt-hash ran, and of a fresh pipe.
    const size = (first: string) =>
      new Promise<string>((resolve, reject) =>
        execFile('sh', ['-c', `{ ${first} perl -e 'print STDERR fcntl(STDOUT, 1032, 0)'; } | cat`, 'sh', bin], (err, _out, errOut) => (err ? reject(err) : resolve(errOut.trim()))),
      );
    assert.equal(await size('"$1" pipes;'), String(1 << 20));
    assert.equal(await size(''), String(64 << 10));
  });

  it('bad input is refused with exit 2 and nothing on stdout', async function () {
    const bin = fileURLToPath(hasherBuild(arch() === 'arm64' ? 'aarch64' : 'x86_64'));
    requireReal(this, 'ddt-hash built for this machine', existsSync(bin));
    for (const bad of ['0 10\n', '0 x 4096\n', '0 10 0\n']) {
      const r = await run([], bin, ['ranges', file, '1000', 'xxh64', 'xxh64'], bad);
      assert.equal(r.code, 2, bad);
      assert.equal(r.out, '');
    }
    assert.equal((await run([], bin, ['ranges', file, '1000', 'md5', 'xxh64'], '')).code, 2);
  });
});
