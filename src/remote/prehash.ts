/**
 * A re-sync's target checksums, read before the lock is taken: the helper's `prehash`, run from
 * the copy of the helper the install keeps beside the kept ddt-hash builds, on the first channel
 * after the connection, beside the install, the probe and the lock. Where the target turned out
 * unchanged, those set-up round trips and the target's hashing then overlap instead of queueing.
 *
 * Its answer starts with the target's record of its last writer as it was before the first read;
 * the run takes the checksums only when its lock, once held, shows the very same record, and only
 * from the ddt-hash build the install's self-test passed (see confirmPrehash in early-hashes.ts).
 * Where there is no kept copy yet (a first run on a host, another ddt version, a user that cannot
 * write the hashers' dir) the answer is `NO …` at once, and the run hashes the target after the
 * lock as it always could.
 */
import { createInterface } from 'node:readline';
import { parseLastWriter, type LastWriter } from '../block/last-writer.js';
import type { BlockDigest, BlockRef, UnitSpec } from '../block/types.js';
import { digestsOf, runLines, unitOf } from '../checksum/ddt-hash.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import type { SshPool } from '../transport/ssh-pool.js';
import { shCommand, validateRemotePath } from './quote.js';

// $1 the work dir base ('' = ~/.ddt), $2 the helper copy's name, $3 `sudo` or `-`, then the
// prehash's own arguments after its DIR (the base's .hashers).
const START = [
  'b=${1:-$HOME/.ddt}/.hashers',
  'h=$b/$2',
  's=',
  '[ "$3" = sudo ] && s="sudo -n"',
  'shift 3',
  '[ -f "$h" ] || { echo "NO no kept copy of the helper"; exit 0; }',
  'exec $s sh "$h" prehash "$b" "$@"',
].join('\n');

/** What the prehash found before its first read, or why it reads nothing. */
export type PrehashStart = { ok: true; hasher: string; last: LastWriter | undefined } | { ok: false; why: string };

export interface PrehashRequest {
  /** The name of the helper's copy (helperCacheName). */
  helper: string;
  /** The ddt-hash builds' cache names, one per architecture. */
  hashers: string[];
  sudo: boolean;
  target: string;
  blocks: BlockRef[];
  algo: ChecksumAlgo;
  units?: UnitSpec;
}

export function prehashCommand(r: PrehashRequest): string {
  const unit = unitOf(r.blocks, r.units);
  return shCommand('sh', '-c', START, 'ddt-prehash', '', r.helper, r.sudo ? 'sudo' : '-', validateRemotePath(r.target, 'remote path'), String(unit), r.units?.algo ?? r.algo, r.algo, ...r.hashers);
}

/** Its first answer line, as found. */
export function parsePrehashStart(line: string | undefined): PrehashStart {
  const m = /^PREHASH (ddt-hash-[A-Za-z0-9._-]+) last=(.*)$/.exec(line ?? '');
  if (m) return { ok: true, hasher: m[1]!, last: parseLastWriter(m[2]!) };
  return { ok: false, why: line?.startsWith('NO ') ? line.slice(3) : `no answer (${JSON.stringify((line ?? '').slice(0, 80))})` };
}

/**
 * The prehash's digests of `r.blocks`, in order; `started` hears its first line (and, where the
 * channel could not be had or ended first, a reason) before any digest comes.
 */
export async function* prehashDigests(pool: SshPool, r: PrehashRequest, signal: AbortSignal, started: (s: PrehashStart) => void): AsyncGenerator<BlockDigest> {
  let told = false;
  const tell = (s: PrehashStart) => {
    if (!told) started(s);
    told = true;
  };
  let ch;
  try {
    ch = await pool.exec(prehashCommand(r), { signal });
  } catch (err) {
    tell({ ok: false, why: `no channel: ${(err as Error).message}` });
    throw err;
  }
  let stderr = '';
  ch.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const onAbort = () => ch.close();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    ch.end(runLines(r.blocks).join('\n') + '\n');
    const lines = createInterface({ input: ch, crlfDelay: Infinity })[Symbol.asyncIterator]();
    const first = await lines.next();
    const start = parsePrehashStart(first.done ? stderr.trim().split('\n').pop() : first.value);
    tell(start);
    if (!start.ok) return;
    yield* digestsOf(r.blocks, lines, r.algo, r.units);
  } catch (err) {
    tell({ ok: false, why: (err as Error).message });
    throw err instanceof DdtError ? err : new DdtError('REMOTE_COMMAND', `the target's prehash failed: ${(err as Error).message} ${stderr.trim()}`.trim(), { cause: err });
  } finally {
    signal.removeEventListener('abort', onAbort);
    await pool.release(ch).catch(() => undefined);
  }
}
