/**
 * One long-lived `ddt-helper.sh serve SOURCE` process on one SSH channel, reading blocks of a
 * remote source for `ddt pull` with `R` requests (protocol in native/ddt-helper.sh). Unlike the
 * write worker, answers carry binary data, so the channel is read as bytes, with backpressure:
 * the channel is paused while more than HIGH_WATER bytes wait for the consumer, and the SSH
 * window then stops the sender. Anything that could desynchronise the framing (a payload
 * abandoned half-way, a garbled line) kills the worker; the owner opens a new one.
 */
import type { ClientChannel } from 'ssh2';
import type { ChecksumAlgo } from '../checksum/types.js';
import type { BlockRef } from '../engine/types.js';
import { SourceReadError } from '../errors.js';
import type { OpenedBlock } from '../source/block-reader.js';
import type { SshPool } from '../transport/ssh-pool.js';
import { RemoteHelperError } from './remote-error.js';
import { ChannelWorker } from './channel-worker.js';

const HEX = /^[0-9a-f]+$/;
const HEX_LENGTH: Record<ChecksumAlgo, number> = { xxh64: 16, sha256: 64 };
const HIGH_WATER = 4 << 20;
const MAX_LINE = 64 << 10;
/** Payload chunks handed on are coalesced to about this size: fewer, larger positioned writes. */
export const READ_CHUNK = 1 << 20;

export class HelperReadWorker extends ChannelWorker<ClientChannel> {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private wake: (() => void) | undefined;
  /** Fails the block whose payload is outstanding, should the worker die before it is read. */
  private failPending: (() => void) | undefined;

  constructor(
    pool: SshPool,
    ch: ClientChannel,
    label: string,
    /** index of the SSH connection carrying this channel, for per-connection progress */
    readonly connection: number | undefined,
  ) {
    super(pool, ch, label);
    ch.on('data', (b: Buffer) => {
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
    if (this.dead) throw this.deadError();
    if (this.busy) throw new Error(`${this.label}: one request at a time`);
    signal.throwIfAborted();
    this.busy = true;
    let handedOver = false;
    const idle = () => {
      this.busy = false;
      onIdle();
    };
    try {
      this.ch.write(`R ${block.offset} ${block.length} ${algo}\n`);
      const line = await this.readLine();
      if (line.startsWith('Z ')) {
        const hex = this.checkHex(line.slice(2), algo, line);
        return { payload: { kind: 'zero' }, checksum: Promise.resolve(hex), badRanges: Promise.resolve([]) };
      }
      if (line.startsWith('ERR ')) throw new RemoteHelperError('REMOTE_ERR', `${this.label}: ${line.slice(4)}`);
      if (line !== `D ${block.length}`) {
        this.destroy('bad answer');
        throw new RemoteHelperError('REMOTE_PROTOCOL', `${this.label}: unexpected answer from helper: ${JSON.stringify(line.slice(0, 200))}`);
      }
      handedOver = true;
      return this.dataBlock(block, algo, idle);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err;
    } finally {
      if (!handedOver) idle();
    }
  }

  /** `H`: checksum of the source range as it is now, computed on the source host (`--skip-identical`). */
  async hash(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    if (this.dead) throw this.deadError();
    if (this.busy) throw new Error(`${this.label}: one request at a time`);
    signal.throwIfAborted();
    this.busy = true;
    try {
      this.ch.write(`H ${block.offset} ${block.length} ${algo}\n`);
      const line = await this.readLine();
      if (line.startsWith('OK ')) return this.checkHex(line.slice(3), algo, line);
      if (line.startsWith('ERR ')) throw new SourceReadError(`remote source ${block.offset}..${block.offset + block.length}: ${line.slice(4)}`);
      this.destroy('bad answer');
      throw new RemoteHelperError('REMOTE_PROTOCOL', `${this.label}: unexpected answer from helper: ${JSON.stringify(line.slice(0, 200))}`);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      throw err;
    } finally {
      this.busy = false;
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
      if (line.startsWith('OK ')) settle(undefined, this.checkHex(line.slice(3), algo, line));
      // The helper read the source and failed (EIO, a shrunk source): a source error, which
      // will not improve on retry; the run stops resumable.
      else if (line.startsWith('ERR ')) settle(new SourceReadError(`remote source ${block.offset}..${block.offset + block.length}: ${line.slice(4)}`));
      else {
        this.destroy('bad answer');
        settle(new RemoteHelperError('REMOTE_PROTOCOL', `${this.label}: unexpected answer from helper: ${JSON.stringify(line.slice(0, 200))}`));
      }
    } catch (err) {
      settle(err);
      throw err;
    } finally {
      if (!complete) {
        // Abandoned half-way: the rest of the frame is still coming; drop the channel.
        this.destroy('payload not consumed');
        settle(new RemoteHelperError('PAYLOAD_ABANDONED', `${this.label}: block ${block.index} payload was not fully consumed`));
      }
    }
  }

  // ---------------------------------------------------------------------------------------

  private checkHex(text: string, algo: ChecksumAlgo, line: string): string {
    const hex = text.trim();
    if (hex.length === HEX_LENGTH[algo] && HEX.test(hex)) return hex;
    this.destroy('bad answer');
    throw new RemoteHelperError('REMOTE_PROTOCOL', `${this.label}: bad checksum from helper: ${JSON.stringify(line)}`);
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
      if (line.length > MAX_LINE) {
        this.destroy('answer without line end');
        throw new RemoteHelperError('REMOTE_PROTOCOL', `${this.label}: helper answer without line end`);
      }
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
