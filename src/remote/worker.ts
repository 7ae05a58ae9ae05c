/**
 * One long-lived `ddt-helper.sh serve` process on one SSH channel (DESIGN §4: never one exec
 * per block). It takes one request at a time: a header line, for `W` exactly `length` payload
 * bytes, and answers one line. Anything that could desynchronise the framing (abort in the
 * middle of a payload, a payload of the wrong length, a garbled answer) kills the worker rather
 * than risk writing bytes at the wrong offset; the owner opens a new one.
 */
import { validateRemotePath } from './quote.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockPayload, BlockRef } from '../engine/types.js';
import { RemoteHelperError } from './remote-error.js';
import { DeathWatch } from './death-watch.js';
import { ChannelWorker, type ChannelOwner, type HelperChannel } from './channel-worker.js';
import type { BlockPart } from '../engine/compress.js';
import { isZero } from '../source/block-reader.js';

const HEX_LENGTH: Record<ChecksumAlgo, number> = { xxh64: 16, sha256: 64 };

/** `X` frame header: kind, spaces, length, newline; 16 bytes (the helper reads exactly that). */
function frameHeader(kind: 'D' | 'Z', length: number): Buffer {
  return Buffer.from(`${kind}${String(length).padStart(14)}\n`, 'latin1');
}

/** What a whole-block write gave: the read-back checksum, whether its flush is deferred, bytes sent. */
export interface WriteResult {
  checksum: string;
  deferred: boolean;
  /** payload bytes put on the channel (zero runs sent as `X` frames count nothing) */
  wire: number;
  /** bytes of the block in all-zero chunks (sent or not) */
  zeroBytes: number;
}

/** A request's payload: `length` bytes from `chunks`, as they are or `framed` (X). */
interface Payload {
  length: number;
  chunks: AsyncIterable<Buffer>;
  framed: boolean;
  /** filled in as the bytes go: bytes put on the channel, bytes in all-zero chunks */
  sent: { wire: number; zeroBytes: number };
}

export interface WriteOptions {
  /**
   * the helper may leave the flush to a later `flush()`: where the write and the read-back both
   * bypass the page cache (O_DIRECT), `deferred` says the checksum is of bytes the device
   * holds, not yet durable
   */
  defer?: boolean;
  /** send the block as `X` frames: zero chunks as a length only */
  sparse?: boolean;
}

interface Pending {
  resolve(line: string): void;
  reject(err: unknown): void;
}

/** The part of a channel a write worker uses: an ssh2 exec channel, or a session over an OpenSSH master. */
export interface WorkerChannel extends HelperChannel {
  setEncoding(enc: BufferEncoding): unknown;
  on(event: 'data', fn: (s: string) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  write(buf: Buffer, cb: (err?: Error | null) => void): unknown;
}

export class HelperWorker<C extends WorkerChannel = WorkerChannel> extends ChannelWorker<C> {
  private buf = '';
  /** Answers still owed by the helper, oldest first (requests can be pipelined). */
  private pending: Pending[] = [];
  private readonly death = new DeathWatch();

  constructor(owner: ChannelOwner<C>, ch: C, label: string) {
    super(owner, ch, label);
    ch.setEncoding('latin1');
    ch.on('data', (s: string) => this.onData(s));
  }

  /** Write a block (data streamed, zeros as a `Z` command), get the read-back checksum. */
  async write(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return (await this.writeBlock(block, payload, algo, signal)).checksum;
  }

  /** `Y`: flush the target; every write answered before this request is then durable. */
  async flush(signal: AbortSignal): Promise<void> {
    this.partAnswer(await this.requestLine('Y 0 0\n', signal));
  }

  /**
   * A whole block: `Z` for a zero block, else `W` (every byte on the channel) or, `sparse`, `X`
   * (zero chunks as a frame length only: a disk's empty stretches inside a block cost no bytes
   * on the wire, and no SSH encryption on either side).
   */
  async writeBlock(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal, o: WriteOptions = {}): Promise<WriteResult> {
    const tail = `${block.offset} ${block.length} ${algo}${o.defer ? ' defer' : ''}\n`;
    const sent = { wire: 0, zeroBytes: 0 };
    let line: string;
    if (payload.kind === 'zero') {
      line = await this.requestLine(`Z ${tail}`, signal);
      sent.zeroBytes = block.length;
    } else line = await this.requestLine(`${o.sparse ? 'X' : 'W'} ${tail}`, signal, { length: block.length, chunks: payload.chunks, framed: o.sparse === true, sent });
    const deferred = o.defer === true && line.endsWith(' deferred');
    if (deferred) line = line.slice(0, -' deferred'.length);
    return { checksum: this.parseAnswer(line, algo), deferred, ...sent };
  }

  /**
   * Write a block that arrived as a file in a remote staging dir (SFTP, rsync) at its offset;
   * the helper removes the file once written. The file must hold exactly `block.length` bytes.
   */
  async writeStaged(block: BlockRef, remoteFile: string, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    validateRemotePath(remoteFile, 'staged block file');
    return this.request(`F ${block.offset} ${block.length} ${algo} ${remoteFile}\n`, algo, signal);
  }

  /**
   * Write a block as parts (raw, gzip, zero), pipelined, then flush and read back (`S`): the
   * path for `--compress` and for zero runs inside a block. `onWire` hears payload bytes sent.
   */
  async writeParts(block: BlockRef, parts: AsyncIterable<BlockPart>, algo: ChecksumAlgo, signal: AbortSignal, onWire?: (bytes: number) => void): Promise<string> {
    async function* requests(): AsyncGenerator<{ head: string; data?: Buffer }> {
      let covered = 0;
      for await (const p of parts) {
        covered += p.length;
        if (p.kind === 'zero') yield { head: `E ${p.offset} ${p.length}\n` };
        else {
          onWire?.(p.data.length);
          yield p.kind === 'raw' ? { head: `P ${p.offset} ${p.length}\n`, data: p.data } : { head: `G ${p.offset} ${p.length} ${p.data.length}\n`, data: p.data };
        }
      }
      if (covered !== block.length) throw new RemoteHelperError('PAYLOAD_LENGTH', `block ${block.index}: parts cover ${covered} of ${block.length} bytes`);
      yield { head: `S ${block.offset} ${block.length} ${algo}\n` };
    }
    let last = '';
    for await (const line of this.pipelined(requests(), 8, signal)) {
      if (last !== '') this.partAnswer(last);
      last = line;
    }
    return this.parseAnswer(last, algo);
  }

  /** Hash many ranges of the target with requests pipelined: no round trip per block. */
  async *hashMany(blocks: Iterable<BlockRef>, algo: ChecksumAlgo, signal: AbortSignal): AsyncGenerator<{ block: BlockRef; checksum: string }> {
    const list = [...blocks];
    async function* requests(): AsyncGenerator<{ head: string }> {
      for (const b of list) yield { head: `H ${b.offset} ${b.length} ${algo}\n` };
    }
    let i = 0;
    for await (const line of this.pipelined(requests(), 64, signal)) yield { block: list[i++]!, checksum: this.parseAnswer(line, algo) };
  }

  private partAnswer(line: string): void {
    if (line === 'OK') return;
    if (line.startsWith('ERR ')) throw new RemoteHelperError('REMOTE_ERR', `${this.label}: ${line.slice(4)}`);
    this.destroy('bad answer');
    throw new RemoteHelperError('REMOTE_PROTOCOL', `${this.label}: unexpected answer to a block part: ${JSON.stringify(line.slice(0, 200))}`);
  }

  /** A no-op round trip: the helper runs and answers (a new session's first request). */
  async ready(signal: AbortSignal): Promise<void> {
    const answers = this.pipelined((async function* () {
      yield { head: 'N 0 0\n' };
    })(), 1, signal);
    for await (const line of answers) this.partAnswer(line);
  }

  /** Checksum of the target range as it is now. */
  async hash(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.request(`H ${block.offset} ${block.length} ${algo}\n`, algo, signal);
  }

  // ---------------------------------------------------------------------------------------

  private async request(header: string, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.parseAnswer(await this.requestLine(header, signal), algo);
  }

  /** One request (header, then the payload if any: see sendPayload), its answer line. */
  private async requestLine(header: string, signal: AbortSignal, payload?: Payload): Promise<string> {
    if (this.dead) throw this.deadError();
    if (this.busy) throw new Error(`${this.label}: one request at a time`);
    signal.throwIfAborted();
    this.busy = true;
    const onAbort = () => this.destroy('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const answer = this.expectAnswer();
      await this.send(Buffer.from(header, 'latin1'));
      if (payload) await this.sendPayload(payload);
      return await answer;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.settle();
    }
  }

  /** Register the next answer the helper owes; answers arrive in request order. */
  private expectAnswer(): Promise<string> {
    const answer = new Promise<string>((resolve, reject) => this.pending.push({ resolve, reject }));
    answer.catch(() => undefined); // a failed send reports first
    return answer;
  }

  /** End of an operation: an answer still owed means the framing is unknown, so end the worker. */
  private settle(): void {
    if (this.pending.length > 0) this.destroy('operation ended with answers outstanding');
    this.busy = false;
  }

  /**
   * Send requests without waiting for each answer (at most `ahead` outstanding) and yield the
   * answers in order: many blocks hashed, or a block's parts written, with no round trip each.
   */
  private async *pipelined(items: AsyncIterable<{ head: string; data?: Buffer }>, ahead: number, signal: AbortSignal): AsyncGenerator<string> {
    if (this.dead) throw this.deadError();
    if (this.busy) throw new Error(`${this.label}: one request at a time`);
    signal.throwIfAborted();
    this.busy = true;
    const onAbort = () => this.destroy('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    const answers: Promise<string>[] = [];
    const it = items[Symbol.asyncIterator]();
    let exhausted = false;
    try {
      for (;;) {
        while (!exhausted && answers.length < ahead) {
          const r = await this.death.race(it.next());
          if (r.done) {
            exhausted = true;
            break;
          }
          answers.push(this.expectAnswer());
          await this.send(Buffer.from(r.value.head, 'latin1'));
          if (r.value.data) await this.send(r.value.data);
        }
        const next = answers.shift();
        if (!next) return;
        yield await next;
      }
    } catch (err) {
      void it.return?.()?.catch(() => undefined);
      if (signal.aborted) throw signal.reason;
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.settle();
    }
  }

  /**
   * `length` bytes from `chunks`: as they are, or `framed` as `X` frames (a run of zero chunks
   * becomes one `Z` frame, any other chunk a `D` frame with its bytes). `sent` learns the bytes
   * put on the channel and the bytes in all-zero chunks.
   */
  private async sendPayload({ chunks, length, framed, sent: out }: Payload): Promise<void> {
    const it = chunks[Symbol.asyncIterator]();
    let sent = 0;
    let zeros = 0;
    try {
      for (;;) {
        // Race the source too: a stalled read must not keep an aborted request alive.
        const r = await this.death.race(it.next());
        if (r.done) break;
        const chunk = r.value;
        if (sent + chunk.length > length) {
          this.destroy('payload longer than its header');
          throw new RemoteHelperError('PAYLOAD_LENGTH', `${this.label}: block payload exceeds ${length} bytes`);
        }
        sent += chunk.length;
        if (chunk.length === 0) continue;
        const zero = isZero(chunk);
        if (zero) out.zeroBytes += chunk.length;
        if (!framed) {
          await this.send(chunk);
          out.wire += chunk.length;
          continue;
        }
        if (zero) {
          zeros += chunk.length;
          continue;
        }
        if (zeros > 0) void this.send(frameHeader('Z', zeros)).catch(() => undefined);
        zeros = 0;
        // Header and bytes queued together; the header's failure is the bytes' failure too.
        void this.send(frameHeader('D', chunk.length)).catch(() => undefined);
        await this.send(chunk);
        out.wire += chunk.length;
      }
      if (zeros > 0 && sent === length) await this.send(frameHeader('Z', zeros));
    } catch (err) {
      void it.return?.()?.catch(() => undefined); // let the source release its buffers
      throw err;
    }
    if (sent !== length) {
      this.destroy('payload shorter than its header');
      throw new RemoteHelperError('PAYLOAD_LENGTH', `${this.label}: block payload has ${sent} of ${length} bytes`);
    }
  }

  /**
   * Resolves when ssh2 has taken the whole buffer into SSH packets (its write callback). Until
   * then ssh2 may still reference it, and the source reuses its read buffers once we ask for the
   * next chunk; the channel window (2 MiB) bounds what is in flight anyway.
   */
  private send(buf: Buffer): Promise<void> {
    if (this.dead) return Promise.reject(this.deadError());
    const written = new Promise<void>((resolve, reject) => {
      this.ch.write(buf, (err?: Error | null) => (err ? reject(err) : resolve()));
    });
    return this.death.race(written);
  }

  private parseAnswer(line: string, algo: ChecksumAlgo): string {
    if (line.startsWith('OK ')) {
      const hex = line.slice(3).trim();
      if (hex.length === HEX_LENGTH[algo] && /^[0-9a-f]+$/.test(hex)) return hex;
      this.destroy('bad answer');
      throw new RemoteHelperError('REMOTE_PROTOCOL', `${this.label}: bad checksum from helper: ${JSON.stringify(line)}`);
    }
    if (line.startsWith('ERR ')) throw new RemoteHelperError('REMOTE_ERR', `${this.label}: ${line.slice(4)}`);
    this.destroy('bad answer');
    throw new RemoteHelperError('REMOTE_PROTOCOL', `${this.label}: unexpected answer from helper: ${JSON.stringify(line.slice(0, 200))}`);
  }

  private onData(s: string): void {
    this.buf += s;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const p = this.pending.shift();
      if (p) p.resolve(line);
      else this.kill(`unsolicited output from helper: ${JSON.stringify(line.slice(0, 200))}`);
    }
    if (this.buf.length > 65536) this.kill('helper output without line end');
  }

  protected onDeath(): void {
    const err = this.deadError();
    this.death.kill(err);
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}
