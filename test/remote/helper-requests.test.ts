// The joined helper's `serve` under dash, no SSH: the one rule for bad requests. A request
// whose payload length is known is skipped and answered ERR; one whose framing cannot be
// known ends the worker.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';

const SCRIPT = fileURLToPath(new URL('../../dist/ddt-helper.sh', import.meta.url));

function serve(target: string, workdir: string, input: Buffer, env: NodeJS.ProcessEnv = process.env): Promise<{ lines: string[]; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('dash', [SCRIPT, 'serve', target, workdir], { env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ lines: out.split('\n').filter(Boolean), code }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

const zframe = (n: number) => Buffer.from(`Z${String(n).padStart(14)}\n`);
const dframe = (b: Buffer) => Buffer.concat([Buffer.from(`D${String(b.length).padStart(14)}\n`), b]);

describe('helper serve: bad requests (dash, local)', function () {
  this.timeout(60_000);
  let dir: string;
  let wd: string;

  before(async function () {
    requireReal(this, 'dash', haveCommand('dash'));
    dir = await makeTempDir('ddt-requests-');
    wd = join(dir, 'work');
    await mkdir(wd);
  });

  for (const perl of [true, false]) {
    it(`a known payload is skipped and answered ERR, nothing is written${perl ? '' : ' (no perl)'}`, async () => {
      const before = randomBytes(8192);
      const target = join(dir, `skip${perl}.img`);
      await writeFile(target, before);
      const input = Buffer.concat([
        Buffer.from('W 0 4 md5\nabcd'), // unknown algo: the 4 bytes are dropped, not written
        Buffer.from('W x 3 xxh64\nabc'),
        Buffer.from('P 0 3 extra\nabc'), // P has no algo field
        Buffer.from('G x 10 5\n12345'),
        Buffer.from('X x 4100 sha256\n'), // a bad offset: the frames are decoded into nothing
        dframe(Buffer.from('live')),
        zframe(4096),
        Buffer.from('Z 0 4096 sha256 later\n'),
        Buffer.from('H 0 nolen sha256\n'), // no payload: its framing is known whatever the length says
        Buffer.from('N 0 0\nQ\n'),
      ]);
      const { lines, code } = await serve(target, wd, input, perl ? process.env : { ...process.env, DDT_HELPER_NO_PERL: '1' });
      assert.deepEqual(lines, [
        'ERR unknown algo md5',
        'ERR bad request header',
        'ERR bad request header',
        'ERR bad request header',
        'ERR bad request header',
        'ERR bad request header',
        'ERR bad request header',
        'OK',
      ]);
      assert.equal(code, 0);
      assert.ok((await readFile(target)).equals(before), 'the target is untouched');
    });
  }

  it('a framing that cannot be known ends the worker', async () => {
    const target = join(dir, 'end.img');
    await writeFile(target, Buffer.alloc(4096));
    for (const bad of ['W 0 nolen xxh64\n', 'P 0 -1\n', 'G 0 10 five\n', 'T 0 0\n', 'X 0 x sha256\n']) {
      const { lines, code } = await serve(target, wd, Buffer.from(`${bad}N 0 0\n`));
      assert.equal(lines.length, 1, `${bad.trim()}: ${lines.join('|')}`);
      assert.match(lines[0]!, /^ERR (bad request header|unknown request 'T')$/);
      assert.equal(code, 1);
    }
    const x = await serve(target, wd, Buffer.concat([Buffer.from('X x 4096 sha256\n'), Buffer.from(`Q${'10'.padStart(14)}\n`), Buffer.from('N 0 0\n')]));
    assert.deepEqual(x.lines, ['ERR bad request header; its frames are unreadable']);
    assert.equal(x.code, 1);
  });
});
