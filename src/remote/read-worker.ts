/**
 * One long-lived `ddt-helper.sh serve SOURCE` process on one SSH channel, reading blocks of a
 * remote source for `ddt pull` with `R` requests (protocol in the helper script). Unlike the
 * write worker, answers carry binary data, so the channel is read as bytes, with backpressure:
 * the channel is paused while more than HIGH_WATER bytes wait for the consumer, and the SSH
 * window then stops the sender. Anything that could desynchronise the framing (a payload
 * abandoned half-way, a garbled line) kills the worker; the owner opens a new one.
 */
import type { BlockRef, OpenedBlock } from '../block/types.js';
import { isDigest, type ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import type { ExecChannel } from '../transport/channels.js';
import { ChannelWorker, helperError, type ChannelOwner } from './channel-worker.js';
const HIGH_WATER = 4 << 20;
const MAX_LINE = 64 << 10;
/** Payload chunks handed on are coalesced to about this size: fewer, larger positioned writes. */
export const READ_CHUNK = 1 << 20;

export class HelperReadWorker extends ChannelWorker {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private wake: (() => void) | undefined;
  /** Fails the block whose payload is outstanding, should the worker die before it is read. */
  private failPending: (() => void) | undefined;

  constructor(
    owner: ChannelOwner,
    ch: ExecChannel,
    label: string,
    /** index of the SSH connection carrying this channel, for per-connection progress */
    public connection: number | undefined,
  ) {
    super(owner, ch, label);
    ch.on('data', (d) => {
      const b = d as Buffer;
      this.queue.push(b);
      this.queued += b.length;
      if (this.queued > HIGH_WATER) ch.pause();
      this.notify();
    });
  }

  /**
   * Ask for a block. Resolves once the helper said whether it is all zeros (`zero` payload,
   * checksum known) or sends data; then the payload must be consumed (or its iterator
   * returned) and the worker stays busy until the trailing checksum line has arrived.
   * `onIdle` runs once the worker can take the next request (or is dead). An abort of the run
   * reaches a busy worker through its owner's `destroy` (one listener per reader, not per block).
   */
  async read(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal, onIdle: () => void): Promise<OpenedBlock> {
    const end = this.begin(signal, ChannelWorker.silenceFor(block.length));
    let handedOver = false;
    const idle = () => {
      end();
      onIdle();
    };
    try {
      this.ch.write(`R ${block.offset} ${block.length} ${algo}\n`);
      const line = await this.readLine();
      if (line.startsWith('Z ')) {
        const hex = this.digest(line.slice(2), algo, line);
        return { payload: { kind: 'zero' }, checksum: Promise.resolve(hex), badRanges: Promise.resolve([]) };
      }
      if (line !== `D ${block.length}`) throw helperError(this.label, line) ?? this.protocolError('unexpected answer from helper', line);
      handedOver = true;
      return this.dataBlock(block, algo, idle);
    } catch (err) {
      throw this.failure(err, signal);
    } finally {
      if (!handedOver) idle();
    }
  }

  /** A no-op round trip: the helper runs and answers (proves a new session is up). */
  async ready(signal: AbortSignal): Promise<void> {
    const end = this.begin(signal);
    try {
      this.ch.write('N 0 0\n');
      const line = await this.readLine();
      if (line !== 'OK') throw helperError(this.label, line) ?? this.protocolError('unexpected answer from helper', line);
    } catch (err) {
      throw this.failure(err, signal);
    } finally {
      end();
    }
  }

  /** `H`: checksum of the source range as it is now, computed on the source host (`--skip-identical`). */
  async hash(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    const end = this.begin(signal, ChannelWorker.silenceFor(block.length));
    try {
      this.ch.write(`H ${block.offset} ${block.length} ${algo}\n`);
      const line = await this.readLine();
      if (line.startsWith('OK ')) return this.digest(line.slice(3), algo, line);
      throw sourceError(block, line) ?? this.protocolError('unexpected answer from helper', line);
    } catch (err) {
      throw this.failure(err, signal);
    } finally {
      end();
    }
  }

  /**
   * `V` requests (`--skip-identical`: the source's block and unit checksums, one streaming hasher
   * per request on the source host), each sent while the one before is answered; yields the
   * answer lines in order. Left half-read, the lines still coming would be taken for the next
   * request's answers: the worker ends then.
   */
  async *hashLines(reqs: { text: string; lines: number; blocks: { length: number }[] }[], signal: AbortSignal): AsyncGenerator<string> {
    // It may wait while the pipeline catches up: silent for as long as hashing its bytes may take.
    const end = this.begin(signal, ChannelWorker.silenceFor(reqs.reduce((n, r) => n + r.blocks.reduce((m, b) => m + b.length, 0), 0)));
    let left = reqs.reduce((n, r) => n + r.lines, 0);
    try {
      let sent = 0;
      const sendNext = () => sent < reqs.length && this.ch.write(reqs[sent++]!.text);
      sendNext();
      for (const req of reqs) {
        sendNext();
        for (let k = 0; k < req.lines; k++) {
          const line = await this.readLine();
          left--;
          yield line;
        }
      }
    } catch (err) {
      throw this.failure(err, signal);
    } finally {
      if (left > 0) this.destroy('checksum stream abandoned');
      end();
    }
  }

  private dataBlock(block: BlockRef, algo: ChecksumAlgo, idle: () => void): OpenedBlock {
    let settle!: (err: unknown, hex?: string) => void;
    const checksum = new Promise<string>((resolve, reject) => {
      let done = false;
      settle = (err, hex) => {
        if (done) return;
        done = true;
        this.failPending = undefined;
        if (err) reject(err);
        else resolve(hex!);
        idle();
      };
    });
    // A consumer that never reads the payload (an aborted run) must not see an unhandled rejection.
    checksum.catch(() => {});
    this.failPending = () => settle(this.deadError());
    const badRanges = checksum.then(() => []);
    badRanges.catch(() => {});
    return { payload: { kind: 'data', chunks: this.payload(block, algo, settle) }, checksum, badRanges };
  }

  /** The block's bytes, then its trailer line, which settles the checksum. */
  private async *payload(block: BlockRef, algo: ChecksumAlgo, settle: (err: unknown, hex?: string) => void): AsyncGenerator<Buffer> {
    let complete = false;
    try {
      yield* this.readBytes(block.length);
      const line = await this.readLine();
      complete = true;
      if (line.startsWith('OK ')) settle(undefined, this.digest(line.slice(3), algo, line));
      else settle(sourceError(block, line) ?? this.protocolError('unexpected answer from helper', line));
    } catch (err) {
      settle(err);
      throw err;
    } finally {
      if (!complete) {
        // Abandoned half-way: the rest of the frame is still coming; drop the channel.
        this.destroy('payload not consumed');
        settle(new DdtError('PAYLOAD', `${this.label}: block ${block.index} payload was not fully consumed`));
      }
    }
  }

  // ---------------------------------------------------------------------------------------

  private digest(text: string, algo: ChecksumAlgo, line: string): string {
    const hex = text.trim();
    if (isDigest(algo, hex)) return hex;
    throw this.protocolError('bad checksum from helper', line);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Wait until data is queued or the worker died. */
  private async more(): Promise<void> {
    if (this.queue.length > 0) return;
    if (this.dead) throw this.deadError();
    await new Promise<void>((resolve) => (this.wake = resolve));
    if (this.queue.length === 0 && this.dead) throw this.deadError();
  }

  private take(n: number): Buffer {
    const head = this.queue[0];
    const b = n >= head.length ? (this.queue.shift() as Buffer) : head.subarray(0, n);
    if (b !== head) this.queue[0] = head.subarray(n);
    this.queued -= b.length;
    if (this.queued <= HIGH_WATER / 2 && this.ch.isPaused()) this.ch.resume();
    return b;
  }

  private async readLine(): Promise<string> {
    let line = Buffer.alloc(0);
    for (;;) {
      await this.more();
      const head = this.queue[0];
      const nl = head.indexOf(10);
      if (nl >= 0) {
        line = Buffer.concat([line, this.take(nl + 1)]);
        return line.subarray(0, line.length - 1).toString('latin1');
      }
      line = Buffer.concat([line, this.take(head.length)]);
      if (line.length > MAX_LINE) throw this.protocolError('helper answer without line end', line.toString('latin1'));
    }
  }

  /** Exactly `length` bytes, coalesced into chunks of about READ_CHUNK. */
  private async *readBytes(length: number): AsyncGenerator<Buffer> {
    for (let left = length; left > 0; ) {
      const parts: Buffer[] = [];
      let size = 0;
      const want = Math.min(READ_CHUNK, left);
      while (size < want) {
        await this.more();
        const b = this.take(want - size);
        parts.push(b);
        size += b.length;
      }
      left -= size;
      yield parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
    }
  }

  protected onDeath(): void {
    this.notify();
    this.failPending?.();
  }
}

/**
 * The helper read the source and failed (EIO, a shrunk source): a source error, which will not
 * improve on retry, so the run stops resumable; `FATAL` (a missing tool) stops it too.
 */
function sourceError(block: BlockRef, line: string): DdtError | undefined {
  if (line.startsWith('ERR ') && !line.startsWith('ERR missing tool ')) return new DdtError('SOURCE_READ', `remote source ${block.offset}..${block.offset + block.length}: ${line.slice(4)}`);
  return helperError('remote source', line);
}
