/**
 * A remote block device or file as a SourceReader (`ddt pull`): a set of HelperReadWorkers,
 * one per SSH channel, each reading one block at a time on the source host and hashing there
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
  private readonly idle: HelperReadWorker[] = [];
  private readonly all = new Set<HelperReadWorker>();
  private waiters: Array<(w: HelperReadWorker | undefined) => void> = [];
  private opening = 0;
  private count = 0;
  private closed = false;
  private maxWorkers: number;
  /** which connection carried the last read of a block (consumed by `connectionOf`) */
  private readonly carriedBy = new Map<number, number>();

  private constructor(
    private readonly helper: RemoteHelper,
    readonly source: string,
    workers: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.maxWorkers = workers;
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** The run stops: drop every channel now; blocks in flight stay unproven. */
  private readonly onAbort = () => {
    for (const w of this.all) w.destroy('aborted');
  };

  /** Start the workers up front, in parallel (reveals the server's channel limit); at least one must come up. */
  static async open(helper: RemoteHelper, source: string, opts: { workers?: number; signal?: AbortSignal } = {}): Promise<RemoteSourceReader> {
    validateRemotePath(source, 'remote source');
    const want = Math.max(1, Math.min(opts.workers ?? Infinity, helper.pool.capacity()));
    const r = new RemoteSourceReader(helper, source, want, opts.signal);
    const started = await Promise.allSettled(Array.from({ length: want }, () => r.spawn()));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (r.all.size === 0) throw failed?.reason ?? new SshError('SSH_NO_CHANNEL', 'no worker channel could be opened');
    r.maxWorkers = Math.min(r.all.size, helper.pool.capacity());
    return r;
  }

  /** Workers alive: how many blocks can be read at once. */
  get workers(): number {
    return this.all.size;
  }

  async openBlock(block: BlockRef, algo: ChecksumAlgo): Promise<OpenedBlock> {
    const signal = this.signal ?? new AbortController().signal;
    const w = await this.acquire(signal);
    if (w.connection !== undefined) this.carriedBy.set(block.index, w.connection);
    return w.read(block, algo, signal, () => this.giveBack(w));
  }

  /** Checksum of a source block without its data (`--skip-identical`), hashed on the source host. */
  async hashBlock(block: BlockRef, algo: ChecksumAlgo): Promise<{ checksum: string; badRanges: [] }> {
    const signal = this.signal ?? new AbortController().signal;
    const w = await this.acquire(signal);
    try {
      return { checksum: await w.hash(block, algo, signal), badRanges: [] };
    } finally {
      this.giveBack(w);
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
    this.closed = true;
    this.signal?.removeEventListener('abort', this.onAbort);
    for (const f of this.waiters.splice(0)) f(undefined);
    const workers = [...this.all];
    this.all.clear();
    const idle = new Set(this.idle.splice(0));
    await Promise.all(workers.map((w) => (idle.has(w) ? w.close() : Promise.resolve(w.destroy('closed')))));
  }

  // ---------------------------------------------------------------------------------------

  private async acquire(signal: AbortSignal): Promise<HelperReadWorker> {
    for (;;) {
      if (this.closed) throw new SshError('SOURCE_CLOSED', `remote source ${this.source} is closed`);
      signal.throwIfAborted();
      const w = this.idle.pop();
      if (w) {
        if (w.alive) return w;
        this.all.delete(w);
        continue;
      }
      if (this.all.size + this.opening < Math.min(this.maxWorkers, this.helper.pool.capacity())) {
        // Replace a lost worker; with none alive, wait for a pool slot (a reconnect).
        try {
          await this.spawn(signal, this.all.size === 0);
        } catch (err) {
          if (!(err instanceof SshError) || err.code !== 'SSH_NO_CHANNEL') throw err;
          this.maxWorkers = Math.max(1, this.all.size);
          if (this.all.size === 0) throw err;
        }
        continue;
      }
      const got = await this.waitIdle(signal);
      if (got) return got;
    }
  }

  private async spawn(signal?: AbortSignal, wait = false): Promise<void> {
    this.opening++;
    try {
      const cmd = shCommand('sh', this.helper.scriptPath, 'serve', this.source, this.helper.workDir);
      const ch = await this.helper.pool.exec(cmd, { signal, wait });
      const w = new HelperReadWorker(this.helper.pool, ch, `reader ${++this.count}`, this.helper.pool.connectionOf(ch));
      if (this.closed) {
        await w.close();
        return;
      }
      this.all.add(w);
      this.giveBack(w);
    } finally {
      this.opening--;
    }
  }

  private giveBack(w: HelperReadWorker): void {
    if (this.closed) return;
    if (!w.alive) {
      this.all.delete(w);
      this.waiters.shift()?.(undefined); // someone waiting may open a replacement now
      return;
    }
    const next = this.waiters.shift();
    if (next) next(w);
    else this.idle.push(w);
  }

  private waitIdle(signal: AbortSignal): Promise<HelperReadWorker | undefined> {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.waiters = this.waiters.filter((f) => f !== take);
        reject(signal.reason);
      };
      const take = (w: HelperReadWorker | undefined) => {
        signal.removeEventListener('abort', onAbort);
        resolve(w);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(take);
    });
  }
}
