/**
 * One long-lived SFTP session (ssh2's raw SFTP API, promisified) and the upload of one block
 * into a staging file with many WRITE requests in flight. ssh2's write streams keep a single
 * request in flight, which caps a session at one round trip per 255 KiB.
 */
import type { SFTPWrapper, Stats } from 'ssh2';
import type { Mortal } from '../pool/live-pool.js';
import { DeathWatch } from './death-watch.js';
import { DdtError } from '../errors.js';

/** OpenSSH's sftp-server takes at most 255 KiB per WRITE (its limits@openssh.com answer). */
const OPENSSH_MAX_WRITE = 261_120;
/** SFTP status code for a missing file. */
const NO_SUCH_FILE = 2;
/** Compared against each WRITE's bytes: runs of zeros are not sent (a hole reads as zeros). */
const ZEROS = Buffer.alloc(OPENSSH_MAX_WRITE);

export interface FsSpace {
  /** Bytes available to the remote user (f_bavail × f_frsize). */
  available: number;
  /** Filesystem size (f_blocks × f_frsize). */
  size: number;
  /** Allocation unit (f_frsize). */
  unit: number;
}

export class SftpSession implements Mortal {
  private dead: Error | undefined;
  /** Waits to fail when the session dies (a dropped link answers nothing). */
  private readonly death = new DeathWatch();

  constructor(
    readonly sftp: SFTPWrapper,
    readonly label: string,
    /** Gives the session's channel back (the ssh2 pool). */
    private readonly release: (sftp: SFTPWrapper) => Promise<void>,
  ) {
    sftp.on('error', (err: Error) => this.kill(err.message));
    sftp.on('end', () => this.kill('session ended'));
    sftp.on('close', () => this.kill('session closed'));
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  /** Largest WRITE the server takes (ssh2 learned it from limits@openssh.com). */
  get maxWrite(): number {
    const learned = (this.sftp as unknown as { _maxWriteLen?: number })._maxWriteLen;
    return Math.max(4096, Math.min(OPENSSH_MAX_WRITE, learned ?? OPENSSH_MAX_WRITE));
  }

  async close(): Promise<void> {
    this.kill('closed');
    await this.release(this.sftp);
  }

  destroy(reason = 'destroyed'): void {
    this.kill(reason);
    void this.release(this.sftp);
  }

  kill(reason: string): void {
    if (this.dead) return;
    this.dead = new Error(reason);
    this.death.kill(this.goneError());
  }

  /** `p`, or a rejection when the session dies first (without keeping `p`'s value alive). */
  whileAlive<T>(p: Promise<T>): Promise<T> {
    return this.death.race(p);
  }

  goneError(): DdtError {
    return new DdtError('SFTP', `${this.label}: SFTP session gone (${this.dead?.message ?? 'dead'})`, { cause: this.dead });
  }

  /** Run one request; ssh2 throws synchronously on a closed channel, answers by callback otherwise. */
  call<T>(what: string, fn: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    if (this.dead) return Promise.reject(this.goneError());
    const answer = new Promise<T>((resolve, reject) => {
      try {
        fn((err, value) => (err ? reject(sftpError(what, err)) : resolve(value as T)));
      } catch (err) {
        reject(sftpError(what, err));
      }
    });
    return this.whileAlive(answer);
  }

  /** lstat, or undefined when there is nothing at `path`. */
  async lstat(path: string): Promise<Stats | undefined> {
    try {
      return await this.call<Stats>(`lstat ${path}`, (cb) => this.sftp.lstat(path, cb));
    } catch (err) {
      if (isNoSuchFile(err)) return undefined;
      throw err;
    }
  }

  async unlink(path: string): Promise<void> {
    try {
      await this.call<void>(`unlink ${path}`, (cb) => this.sftp.unlink(path, cb));
    } catch (err) {
      if (!isNoSuchFile(err)) throw err;
    }
  }

  async statvfs(path: string): Promise<FsSpace> {
    const v = await this.call<Record<string, number | bigint>>(`statvfs ${path}`, (cb) => this.sftp.ext_openssh_statvfs(path, cb));
    const n = (k: string) => Number(v[k] ?? 0);
    const unit = n('f_frsize') || n('f_bsize') || 4096;
    return { available: n('f_bavail') * unit, size: n('f_blocks') * unit, unit };
  }
}

/** The server answered a request with an error status (the session is still fine). */
export class SftpStatusError extends DdtError {
  constructor(
    message: string,
    /** SFTP status code (2: no such file, 4: failure, e.g. ENOSPC), when the server sent one. */
    readonly status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super('SFTP', message, options);
    this.name = 'SftpStatusError';
  }
}

function sftpError(what: string, err: unknown): SftpStatusError {
  const e = err as Error & { code?: unknown };
  return new SftpStatusError(`SFTP ${what}: ${e?.message ?? String(err)}`, typeof e?.code === 'number' ? e.code : undefined, { cause: err });
}

export function isNoSuchFile(err: unknown): boolean {
  return err instanceof SftpStatusError && err.status === NO_SUCH_FILE;
}

export interface UploadOptions {
  /** Continue a file an earlier attempt left (at its size) instead of starting afresh. */
  resume: boolean;
  /** WRITE requests in flight at once. */
  inFlight: number;
  signal: AbortSignal;
  /** Hears payload bytes as they go on the wire. */
  onWire?: (bytes: number) => void;
  /** The file was opened: `existing` bytes of it are kept (0 when it was truncated). */
  onOpened(existing: number): void;
  /** The server confirmed `bytes` more. */
  onAcked(bytes: number): void;
  /** `bytes` of zeros were left as a hole instead of sent (the file reads as zeros there). */
  onHole?: (bytes: number) => void;
}

/**
 * Write `length` bytes from `chunks` into `file` with positioned WRITEs, many in flight, then
 * close it. Pieces that are all zeros are not sent: they stay holes, which read as zeros, and
 * the file is extended to `length` at the end. With `resume`, a regular file of at most `length`
 * bytes is continued at its size: that many leading payload bytes are read (the source checksum
 * needs them) but not sent; the block's read-back checksum proves the result either way.
 * Returns the payload bytes sent.
 *
 * A failure rejects; the session stays usable unless it died. A session that died leaves a
 * prefix of the block in the file (sftp-server handles requests in order), so a later attempt
 * may continue it; after an error status anything may have been written past a hole.
 */
export async function uploadBlock(s: SftpSession, file: string, chunks: AsyncIterable<Buffer>, length: number, o: UploadOptions): Promise<number> {
  o.signal.throwIfAborted();
  let existing = 0;
  const st = await s.lstat(file);
  if (st && !st.isFile()) throw new DdtError('SFTP', `staging path ${file} exists and is not a regular file`);
  if (o.resume && st && st.size <= length) existing = st.size;
  const handle = await s.call<Buffer>(`open ${file}`, (cb) => s.sftp.open(file, existing > 0 ? 'r+' : 'w', { mode: 0o600 }, cb));
  o.onOpened(existing);
  let closed = false;
  let sent: number;
  try {
    const w = await writeAll(s, handle, chunks, length, existing, o);
    sent = w.sent;
    // Trailing zeros were skipped: the file must still hold exactly `length` bytes.
    if (Math.max(existing, w.end) < length) await s.call<void>(`truncate ${file}`, (cb) => s.sftp.fsetstat(handle, { size: length }, cb));
    closed = true;
    await s.call<void>(`close ${file}`, (cb) => s.sftp.close(handle, cb));
  } finally {
    if (!closed && s.alive) s.sftp.close(handle, () => undefined); // best effort, not awaited
  }
  return sent;
}

/** Sends the payload past `skip`; returns the bytes sent and where the last WRITE ended. */
async function writeAll(s: SftpSession, handle: Buffer, chunks: AsyncIterable<Buffer>, length: number, skip: number, o: UploadOptions): Promise<{ sent: number; end: number }> {
  const max = s.maxWrite;
  let sent = 0;
  let end = 0;
  let inFlight = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const changed = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const settle = () => new Promise<void>((resolve) => (wake = resolve));
  const onAbort = () => {
    failure ??= o.signal.reason;
    changed();
  };
  o.signal.addEventListener('abort', onAbort, { once: true });
  const it = chunks[Symbol.asyncIterator]();
  let pos = 0;
  try {
    for (;;) {
      const r = await s.whileAlive(it.next());
      if (r.done) break;
      const chunk = r.value;
      if (pos + chunk.length > length) throw new DdtError('PAYLOAD', `block payload exceeds ${length} bytes`);
      // Bytes already in the file are read (for the source checksum) but not sent again.
      for (let at = Math.max(0, skip - pos); at < chunk.length; ) {
        while (inFlight >= o.inFlight && failure === undefined) await s.whileAlive(settle());
        if (failure !== undefined) throw failure;
        const len = Math.min(max, chunk.length - at);
        if (chunk.compare(ZEROS, 0, len, at, at + len) === 0) {
          o.onHole?.(len);
          at += len;
          continue;
        }
        o.onWire?.(len);
        sent += len;
        end = pos + at + len;
        inFlight++;
        // ssh2 copies the bytes into its packet here: the chunk may be reused once we move on.
        s.sftp.write(handle, chunk, at, len, pos + at, (err?: Error | null) => {
          inFlight--;
          if (err) failure ??= sftpError('write', err);
          else o.onAcked(len);
          changed();
        });
        at += len;
      }
      pos += chunk.length;
      if (failure !== undefined) throw failure;
    }
    if (pos !== length) throw new DdtError('PAYLOAD', `block payload has ${pos} of ${length} bytes`);
    while (inFlight > 0 && failure === undefined) await s.whileAlive(settle());
    if (failure !== undefined) throw failure;
    return { sent, end };
  } catch (err) {
    void it.return?.()?.catch(() => undefined); // let the source release its buffers
    throw err;
  } finally {
    o.signal.removeEventListener('abort', onAbort);
  }
}
