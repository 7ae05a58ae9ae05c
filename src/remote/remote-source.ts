/**
 * A remote block device or file as a SourceReader (`ddt pull`): a WorkerPool of
 * HelperReadWorkers, one per SSH channel, each reading one block at a time on the source host and hashing there
 * exactly the bytes it sends. A worker whose channel died is dropped and replaced on the next
 * call; the failed call rejects so the engine can retry the block.
 */
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockRef, SourceReader } from '../engine/types.js';
import { SshError } from '../errors.js';
import type { OpenedBlock } from '../source/block-reader.js';
import type { SourceIdentity } from '../source/device.js';
import type { RemoteHelper } from './helper.js';
import { shCommand, validateRemotePath } from './quote.js';
import { HelperReadWorker } from './read-worker.js';
import { WorkerPool } from './worker-pool.js';
import { RemoteHelperError } from './remote-error.js';
import { lastLine, runRemote } from './run.js';

export interface RemoteSourceInfo {
  kind: 'file' | 'block' | 'other';
  size: number;
  readable: boolean;
  identity: SourceIdentity;
  /** `dev:ino` of a file or `major:minor` of a device on the source host */
  object?: string;
}

/** `ddt-helper.sh identity SOURCE`: size and what identifies the source between runs. */
export async function remoteSourceInfo(helper: RemoteHelper, path: string, signal?: AbortSignal): Promise<RemoteSourceInfo> {
  validateRemotePath(path, 'remote source');
  const res = await runRemote(helper.pool, shCommand('sh', helper.scriptPath, 'identity', path), { signal });
  if (res.code !== 0) throw new RemoteHelperError('REMOTE_COMMAND', `ddt-helper identity failed: ${lastLine(res.stderr) || `exit ${res.code}`}`);
  const kv = new Map<string, string>();
  for (const line of res.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const kindText = kv.get('kind');
  const kind = kindText === 'file' || kindText === 'block' ? kindText : 'other';
  const size = Number(kv.get('size') ?? NaN);
  if (!Number.isSafeInteger(size) || size < 0) throw new RemoteHelperError('REMOTE_PROBE', `remote identity gave no valid size (${JSON.stringify(kv.get('size'))})`);
  const identity: SourceIdentity = { kind: kind === 'block' ? 'block' : 'file', size };
  let object: string | undefined;
  if (kind === 'file') {
    identity.ino = kv.get('ino') || undefined;
    const frac = (kv.get('mtime_frac') ?? '').padEnd(3, '0').slice(0, 3);
    identity.mtimeMs = Number(kv.get('mtime') ?? 0) * 1000 + Number(/^\d{3}$/.test(frac) ? frac : 0);
    if (kv.get('dev') && kv.get('ino')) object = `${kv.get('dev')}:${kv.get('ino')}`;
  } else if (kind === 'block') {
    identity.serial = kv.get('serial') || undefined;
    identity.wwid = kv.get('wwid') || undefined;
    object = kv.get('devno') || undefined;
  }
  return { kind, size, readable: kv.get('readable') === '1', identity, object };
}

export class RemoteSourceReader implements SourceReader {
  /** which connection carried the last read of a block (consumed by `connectionOf`) */
  private readonly carriedBy = new Map<number, number>();

  private constructor(
    private readonly pool: WorkerPool<HelperReadWorker>,
    readonly source: string,
    private readonly signal: AbortSignal | undefined,
  ) {
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** The run stops: drop every channel now; blocks in flight stay unproven. */
  private readonly onAbort = () => this.pool.destroyAll('aborted');

  /** Start the workers up front, in parallel (reveals the server's channel limit); at least one must come up. */
  static async open(helper: RemoteHelper, source: string, opts: { workers?: number; signal?: AbortSignal } = {}): Promise<RemoteSourceReader> {
    validateRemotePath(source, 'remote source');
    let count = 0;
    const pool = await WorkerPool.start<HelperReadWorker>(opts.workers ?? Infinity, {
      spawn: async (signal, wait) => {
        const cmd = shCommand('sh', helper.scriptPath, 'serve', source, helper.workDir);
        const ch = await helper.pool.exec(cmd, { signal, wait });
        return new HelperReadWorker(helper.pool, ch, `reader ${++count}`, helper.pool.connectionOf(ch));
      },
      capacity: () => helper.pool.capacity(),
      closedError: () => new SshError('SOURCE_CLOSED', `remote source ${source} is closed`),
    });
    return new RemoteSourceReader(pool, source, opts.signal);
  }

  /** Workers alive: how many blocks can be read at once. */
  get workers(): number {
    return this.pool.size;
  }

  async openBlock(block: BlockRef, algo: ChecksumAlgo): Promise<OpenedBlock> {
    const signal = this.signal ?? new AbortController().signal;
    const w = await this.pool.acquire(signal);
    if (w.connection !== undefined) this.carriedBy.set(block.index, w.connection);
    return w.read(block, algo, signal, () => this.pool.giveBack(w));
  }

  /** Checksum of a source block without its data (`--skip-identical`), hashed on the source host. */
  async hashBlock(block: BlockRef, algo: ChecksumAlgo): Promise<{ checksum: string; badRanges: [] }> {
    const signal = this.signal ?? new AbortController().signal;
    const w = await this.pool.acquire(signal);
    try {
      return { checksum: await w.hash(block, algo, signal), badRanges: [] };
    } finally {
      this.pool.giveBack(w);
    }
  }

  /** The connection that carried block `index` (once; for per-connection progress). */
  connectionOf(index: number): number | undefined {
    const c = this.carriedBy.get(index);
    this.carriedBy.delete(index);
    return c;
  }

  /** Quit the idle workers politely and drop busy ones (their blocks stay unproven). Idempotent. */
  async close(): Promise<void> {
    this.signal?.removeEventListener('abort', this.onAbort);
    await this.pool.close();
  }
}
