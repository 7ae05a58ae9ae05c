// Builds the streaming hasher (native/hasher/*.c) as static executables for the architectures
// ddt can upload it to: dist/native/ddt-hash-x86_64 and dist/native/ddt-hash-aarch64. Run by
// `npm run build`. Static, so it runs whatever libc the remote host has. A compiler that is not
// there (Debian: gcc, gcc-aarch64-linux-gnu) only leaves that architecture without the binary:
// the remote helper then hashes with its shell tools, as before, and the build says so.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'hasher');
const outDir = process.argv[2] ?? join(here, '..', 'dist', 'native');
const common = readdirSync(src).filter((f) => f.endsWith('.c') && !/^sha256-(x86|arm)\.c$/.test(f));

/** uname -m → the compiler that builds for it here, and its instruction-set file. */
const TARGETS = {
  x86_64: { node: 'x64', cross: 'x86_64-linux-gnu-gcc', accel: 'sha256-x86.c' },
  aarch64: { node: 'arm64', cross: 'aarch64-linux-gnu-gcc', accel: 'sha256-arm.c' },
};

function found(cmd) {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

mkdirSync(outDir, { recursive: true });
for (const [arch, t] of Object.entries(TARGETS)) {
  const out = join(outDir, `ddt-hash-${arch}`);
  rmSync(out, { force: true });
  const cc = [process.arch === t.node ? 'cc' : undefined, t.cross].find((c) => c && found(c));
  if (!cc) {
    process.stderr.write(`native/build-hasher.mjs: no C compiler for ${arch} (${t.cross}): ${arch} hosts hash with their shell tools\n`);
    continue;
  }
  const files = [...common, t.accel].map((f) => join(src, f));
  try {
    execFileSync(cc, ['-O2', '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-static', '-pthread', '-s', '-o', out, ...files], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    process.stderr.write(`native/build-hasher.mjs: ${cc} failed for ${arch}: ${arch} hosts hash with their shell tools\n`);
  }
}
