// GPT relocation against the tool that defines it: a GPT made by sfdisk, copied onto a larger
// image, relocated by ddt's pure code and by `sfdisk --relocate gpt-bak-std`: byte for byte the
// same, and sfdisk finds nothing to complain about. Plus CRC-32 and the refusals.
import assert from 'node:assert/strict';
import { execFileSync, execSync } from 'node:child_process';
import { copyFile, open, readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from '../../src/block/crc32.js';
import { backupAtEnd, entriesLength, findGpt, GPT_PROBE_BYTES, relocateGpt } from '../../src/block/gpt.js';
import { makeTempDir } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';

const MiB = 1024 * 1024;

describe('block/gpt', () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('ddt-gpt-');
  });

  it('crc32 is the IEEE one GPT uses', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32(Buffer.alloc(0)), 0);
    assert.equal(crc32(Buffer.from('56789'), crc32(Buffer.from('1234'))), 0xcbf43926, 'continues a running CRC');
  });

  it('moves the backup GPT exactly as sfdisk --relocate gpt-bak-std does', async function () {
    requireReal(this, 'sfdisk', haveCommand('sfdisk'));
    const src = join(dir, 'src.img');
    execSync(`truncate -s 64M ${src} && printf 'label: gpt\\n,16M,L\\n,8M,S\\n' | sfdisk -q ${src}`);
    const data = await readFile(src);
    const g = findGpt(data.subarray(0, GPT_PROBE_BYTES));
    assert.ok(g, 'a GPT at LBA 1');
    assert.equal(g.sectorSize, 512);
    assert.equal(g.alternateLba, BigInt(64 * MiB / 512 - 1));
    assert.equal(backupAtEnd(g, 64 * MiB), true);
    assert.equal(backupAtEnd(g, 96 * MiB), false);

    // The copy a whole-disk transfer leaves on a larger target, relocated by sfdisk...
    const bySfdisk = join(dir, 'sfdisk.img');
    await copyFile(src, bySfdisk);
    await truncate(bySfdisk, 96 * MiB);
    execFileSync('sfdisk', ['-q', '--relocate', 'gpt-bak-std', bySfdisk], { stdio: 'ignore' });
    // ...and by ddt.
    const byDdt = join(dir, 'ddt.img');
    await copyFile(src, byDdt);
    await truncate(byDdt, 96 * MiB);
    const entries = data.subarray(Number(g.entriesLba) * 512, Number(g.entriesLba) * 512 + entriesLength(g));
    const writes = relocateGpt(g, data.subarray(0, 1024), entries, { source: 64 * MiB, target: 96 * MiB });
    assert.deepEqual(writes.map((w) => [w.offset, w.length]), [[0, 1024], [96 * MiB - 33 * 512, 33 * 512]]);
    const fh = await open(byDdt, 'r+');
    for (const w of writes) await fh.write(w.data, 0, w.length, w.offset);
    await fh.close();
    assert.ok((await readFile(byDdt)).equals(await readFile(bySfdisk)), 'the same bytes as sfdisk wrote');
    const verify = execFileSync('sfdisk', ['--verify', byDdt], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.match(verify, /No errors detected/);
    const moved = findGpt((await readFile(byDdt)).subarray(0, GPT_PROBE_BYTES))!;
    assert.equal(moved.alternateLba, BigInt(96 * MiB / 512 - 1));
    assert.equal(moved.lastUsableLba, BigInt(96 * MiB / 512 - 34));
  });

  it('a damaged header is no GPT, and a damaged partition array is never spread', async function () {
    requireReal(this, 'sfdisk', haveCommand('sfdisk'));
    const src = join(dir, 'damaged.img');
    execSync(`truncate -s 8M ${src} && printf 'label: gpt\\n,2M,L\\n' | sfdisk -q ${src}`);
    const data = await readFile(src);
    const g = findGpt(data.subarray(0, GPT_PROBE_BYTES))!;
    const entries = Buffer.from(data.subarray(1024, 1024 + entriesLength(g)));
    entries[5] ^= 1;
    assert.throws(() => relocateGpt(g, data.subarray(0, 1024), entries, { source: 8 * MiB, target: 16 * MiB }), /partition array does not match its checksum/);
    const head = Buffer.from(data.subarray(0, GPT_PROBE_BYTES));
    head[512 + 40] ^= 1; // FirstUsableLBA, under the header's CRC
    assert.equal(findGpt(head), undefined);
    assert.equal(findGpt(Buffer.alloc(GPT_PROBE_BYTES)), undefined, 'no signature, no GPT');
  });
});
