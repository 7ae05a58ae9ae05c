#!/usr/bin/env node
/**
 * The `ddt` command (`dist/cli/main.js`): runs the CLI (cli.ts) from its bundle
 * `dist/cli/ddt.cjs` (cli.ts and everything it imports but ssh2, made by `npm run bundle`) with
 * the V8 code cache the build wrote next to it. Without a cache V8 parses the whole ≈ 640 KB
 * bundle before the first line runs, and a run's SSH connections wait for that: Node 20 has
 * no `module.enableCompileCache()`, so this does it with `vm.Script`'s `cachedData`. A cache V8
 * rejects (another Node build, an edited bundle) costs only that parse; nothing is written at
 * run time. Without a bundle (tsc only) the compiled modules run as they are.
 *
 *   DDT_WRITE_CODE_CACHE=1  (the build) write the cache when the process exits
 *   DDT_CODE_CACHE_REPORT=1 say on stderr whether the cache was used (tests)
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const bundle = fileURLToPath(new URL('./ddt.cjs', import.meta.url));
if (existsSync(bundle)) runBundle();
else await import('./cli.js');

function runBundle(): void {
  const cacheFile = `${bundle}.cache`;
  const writing = process.env.DDT_WRITE_CODE_CACHE === '1';

  let cachedData: Buffer | undefined;
  if (!writing) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      // no cache (a build without it): V8 parses the bundle
    }
  }
  // The bundle is CommonJS: wrapped like Node's loader does, on its first line so that line and
  // column numbers in stack traces and the source map stay right.
  const source = readFileSync(bundle, 'utf8').replace(/^#!.*/, '');
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: bundle, cachedData });
  if (process.env.DDT_CODE_CACHE_REPORT === '1') {
    process.stderr.write(`ddt: code cache ${cachedData === undefined ? 'absent' : script.cachedDataRejected ? 'rejected' : 'used'}\n`);
  }
  // After the run: the cache then also holds the functions the run compiled.
  if (writing) process.once('exit', () => writeFileSync(cacheFile, script.createCachedData()));
  const mod = { exports: {} };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, dirname(bundle));
}
