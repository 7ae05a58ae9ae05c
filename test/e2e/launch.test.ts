// The built `ddt` command (dist/cli/main.js) runs the CLI bundle with the V8 code cache the
// build wrote; a cache V8 rejects, or no bundle at all, still runs the CLI.
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCli, CLI } from './cli.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('e2e: the ddt command and its code cache', function () {
  this.timeout(60_000);
  const built = dirname(CLI);
  // A copy next to dist/cli: the bundle finds package.json, native/ and node_modules the same way.
  const copy = join(built, '..', `cli-launch-test-${process.pid}`);
  after(() => rmSync(copy, { recursive: true, force: true }));

  it('the build wrote a code cache and the command uses it', async () => {
    assert.ok(existsSync(join(built, 'ddt.cjs.cache')), 'npm run build writes dist/cli/ddt.cjs.cache');
    const r = await runCli(['--version'], { env: { DDT_CODE_CACHE_REPORT: '1' } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), version);
    assert.equal(r.stderr.trim(), 'ddt: code cache used');
  });

  it('a command that needs no SSH connection does not load ssh2', async () => {
    // Node's module loader names every CommonJS file it loads under NODE_DEBUG=module.
    const r = await runCli(['status', '--help'], { env: { NODE_DEBUG: 'module' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ddt status/);
    assert.match(r.stderr, /MODULE/, 'NODE_DEBUG=module traces the loader');
    assert.doesNotMatch(r.stderr, /node_modules\/ssh2\//);
  });

  it('a cache V8 rejects is ignored, and without a bundle the compiled modules run', async () => {
    cpSync(built, copy, { recursive: true });
    writeFileSync(join(copy, 'ddt.cjs.cache'), Buffer.alloc(4096, 7));
    const rejected = await run(process.execPath, [join(copy, 'main.js'), '--version'], { env: { ...process.env, DDT_CODE_CACHE_REPORT: '1' } });
    assert.equal(rejected.stdout.trim(), version);
    assert.equal(rejected.stderr.trim(), 'ddt: code cache rejected');
    rmSync(join(copy, 'ddt.cjs'));
    const plain = await run(process.execPath, [join(copy, 'main.js'), 'status', '--help'], { env: { ...process.env, DDT_CODE_CACHE_REPORT: '1' } });
    assert.match(plain.stdout, /ddt status/);
    assert.equal(plain.stderr, '', 'no bundle, no cache report');
  });
});
