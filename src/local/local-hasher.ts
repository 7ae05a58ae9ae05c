/**
 * ddt-hash on this machine: the same streaming hasher the remote helper runs, for a local end's
 * `--skip-identical` checksums (the source of a send, the target of a pull or copy). One process
 * for the whole stream, on a core of its own: in this process the same hashing cost about
 * 0.5 CPU-s per GiB of the event loop (two xxh64 passes and two copies into WebAssembly), which
 * the sender needs for the blocks that do go. Where there is no build for this machine, the
 * caller hashes in this process.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BlockDigest, BlockRef, UnitSpec } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { digestsOf, hasherBuild, runLines, unitOf } from '../checksum/ddt-hash.js';

const ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

/** The build for this machine, unless DDT_NATIVE_HASHER=off. */
export function localHasher(): string | undefined {
  if (process.env.DDT_NATIVE_HASHER === 'off') return undefined;
  const arch = ARCH[process.arch];
  const path = arch ? fileURLToPath(hasherBuild(arch)) : undefined;
  return path && existsSync(path) ? path : undefined;
}

/**
 * Digests of `blocks` of `file`, in order, from one ddt-hash process. `buffered` for a source
 * file: through the page cache, where it may well be already. A target, and a source device, are
 * read O_DIRECT where they take it: a target as its read-backs are, a device because its cache
 * can hold blocks that are not on it (a mounted filesystem writes around it).
 */
export async function* hashLocally(bin: string, file: string, blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec, buffered = false): AsyncGenerator<BlockDigest> {
  const unit = unitOf(blocks, units);
  const child = spawn(bin, ['ranges', file, String(unit), units?.algo ?? algo, algo, ...(buffered ? ['buffered'] : [])], { stdio: ['pipe', 'pipe', 'pipe'], signal });
  child.on('error', () => undefined); // an abort kills it; the stream below reports the rest
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  child.stdin.on('error', () => undefined);
  child.stdin.end(runLines(blocks).join('\n') + '\n');
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const lines = createInterface({ input: child.stdout, crlfDelay: Infinity })[Symbol.asyncIterator]();
  try {
    yield* digestsOf(blocks, lines, algo, units);
    const code = await exited;
    if (code !== 0) throw new DdtError('SOURCE_READ', `ddt-hash on ${file} exited with ${code}: ${stderr.trim()}`);
  } finally {
    if (child.exitCode === null) child.kill();
  }
}
