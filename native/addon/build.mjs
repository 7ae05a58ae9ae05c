// Builds native/addon (lseek SEEK_DATA/SEEK_HOLE and fallocate for sparse files) into
// dist/ddt_sparse.node with node-gyp, the one that comes with npm. Run by `npm run build`. It
// is optional: without a compiler or Node's headers ddt reads holes as data and writes zeros
// where it cannot punch, so a failed build says so and exits 0.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', '..', 'dist', 'ddt_sparse.node');

function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    const npm = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
    candidates.push(join(dirname(npm), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
    candidates.push(join(dirname(npm), 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  } catch {
    // no npm on PATH
  }
  return candidates.find((c) => c && existsSync(c));
}

const gyp = nodeGyp();
try {
  if (!gyp) throw new Error('node-gyp not found (it comes with npm)');
  const args = [gyp, 'rebuild', '--directory', here, '--loglevel', 'error'];
  // Offline: Node's own headers where the distribution installs them, never a download.
  if (!process.env.npm_config_nodedir && existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
  execFileSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  mkdirSync(dirname(out), { recursive: true });
  copyFileSync(join(here, 'build', 'Release', 'ddt_sparse.node'), out);
} catch (err) {
  const why = String(err.stderr ?? err.message ?? err).trim().split('\n').slice(-3).join(' ');
  process.stderr.write(`native/addon: not built (${why}); ddt will read holes as data and write zeros where it cannot punch\n`);
}
