// native/join.mjs: the parts of the helper become the one uploaded script, the same bytes every
// time, `#!/bin/sh` first, valid for every shell the helper runs under.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeTempDir } from '../harness/loop.js';
import { haveCommand, requireReal } from '../harness/real.js';

const run = promisify(execFile);
const JOIN = fileURLToPath(new URL('../../native/join.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/ddt-helper.sh', import.meta.url));

describe('native/join.mjs', () => {
  it('joins deterministically: the build output, #!/bin/sh first, the perl decoder embedded', async () => {
    const dir = await makeTempDir('ddt-join-');
    await run(process.execPath, [JOIN, join(dir, 'a.sh')]);
    await run(process.execPath, [JOIN, join(dir, 'b.sh')]);
    const a = await readFile(join(dir, 'a.sh'));
    assert.ok(a.equals(await readFile(join(dir, 'b.sh'))), 'two joins, the same bytes');
    assert.ok(a.equals(await readFile(BUILT)), 'npm run build wrote the same');
    const text = a.toString();
    assert.ok(text.startsWith('#!/bin/sh\n'));
    assert.equal(text.indexOf('#!', 1), -1, 'one #! line');
    assert.doesNotMatch(text, /@@[a-z0-9.-]+@@/, 'every embed filled in');
    const perl = await readFile(new URL('../../native/helper/frames.pl', import.meta.url), 'utf8');
    assert.ok(text.includes(`SPARSE_PL='${perl.trimEnd()}'`));
    assert.match(text, /\ncase \$cmd in\n[^]*\nesac\n$/, 'the dispatch comes last');
  });

  for (const shell of ['dash', 'bash', 'busybox']) {
    it(`${shell} parses the joined script`, async function () {
      requireReal(this, shell, haveCommand(shell));
      await run(shell, shell === 'busybox' ? ['sh', '-n', BUILT] : ['-n', BUILT]);
    });
  }
});
