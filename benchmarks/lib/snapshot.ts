// ddt as it is now, built into a private snapshot inside the repo (so node_modules and
// package.json's "type": "module" resolve): others may rebuild dist/ during a long run.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { registerCleanup } from '../../test/harness/hooks.js';

/**
 * Build `root`'s src/ the way `npm run build` does (tsc, the native addon, then package.json's
 * `bundle` script run inside the snapshot), or copy its dist/ with `noBuild`; native/ and package.json first.
 * Returns the CLI's path.
 */
export function snapshotCli(root: string, dir: string, o: { noBuild?: boolean; log?: (msg: string) => void } = {}): string {
  registerCleanup(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(dir, { recursive: true });
  // First: the bundle script runs the built CLI once (ddt --version reads package.json).
  cpSync(join(root, 'native'), join(dir, 'native'), { recursive: true });
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  if (o.noBuild) {
    if (!existsSync(join(root, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run npm run build, or drop --no-build');
    cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  } else {
    o.log?.('building src/ into a private snapshot (tsc, then the bundle)');
    const bin = join(root, 'node_modules/.bin');
    try {
      execFileSync(join(bin, 'tsc'), ['-p', join(root, 'tsconfig.json'), '--outDir', join(dir, 'dist')], { stdio: 'pipe' });
      // The sparse addon (holes of the source skipped, punches of local targets), as npm run build does.
      execFileSync(process.execPath, [join(dir, 'native/addon/build.mjs')], { cwd: dir, stdio: 'pipe' });
      const bundle = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { bundle: string } }).scripts.bundle;
      execFileSync('sh', ['-c', bundle], { cwd: dir, stdio: 'pipe', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    } catch (err) {
      throw new Error(`build failed:\n${String((err as { stdout?: Buffer }).stdout ?? '')}${String((err as { stderr?: Buffer }).stderr ?? err)}`);
    }
  }
  return join(dir, 'dist/cli/main.js');
}
