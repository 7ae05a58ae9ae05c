/**
 * One long-lived `ddt-helper.sh serve` process on one channel, writing blocks of a target (never
 * one exec per block). A request is a header line, for data requests exactly `length` payload
 * bytes, and one answer line. Anything that could desynchronise the framing (an abort in the
 * middle of a payload, a payload of the wrong length, a garbled answer) ends the worker rather
 * than risk writing bytes at the wrong offset; its pool opens a new one.
 */
import type { BlockDigest, BlockPart, BlockRef, UnitSpec, ZeroedHow } from '../block/types.js';
import { isZero } from '../block/zero.js';
import { isDigest, type ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import type { ExecChannel } from '../transport/channels.js';
import { ChannelWorker, helperError, type ChannelOwner } from './channel-worker.js';
import { DeathWatch } from './death-watch.js';
import { validateRemotePath } from './quote.js';
import { digestsOf, hashRequests } from './unit-hashes.js';
import { answerWords, frameHeader, lengthOf, toAsync, zerosOf, type Request } from './wire.js';
import type { Payload, WriteOptions, WriteResult } from './write-request.js';

export type { WriteOptions, WriteResult } from './write-request.js';

export class HelperWorker extends ChannelWorker {
  private buf = '';
  /** Answers still owed by the helper, oldest first (requests can be pipelined). */
  private pending: Array<{ resolve(line: string): void; reject(err: unknown): void }> = [];
  private readonly death = new DeathWatch();

  constructor(owner: ChannelOwner, ch: ExecChannel, label: string) {
    super(owner, ch, label);
    ch.setEncoding('latin1');
    ch.on('data', (s) => this.onData(s as string));
  }

  /** A no-op round trip: the helper runs and answers (proves a new session is up). */
  async ready(signal: AbortSignal): Promise<void> {
    this.partAnswer(await this.request('N 0 0\n', signal));
  }

  /**
   * A whole block: `Z` for a zero block, else `W` (every byte on the channel) or, `framed`, `X`
   * (zero chunks as a frame length only: empty stretches inside a block cost no bytes on the
   * wire and no encryption on either side).
   */
  async writeBlock(block: BlockRef, chunks: AsyncIterable<Buffer> | 'zero', algo: ChecksumAlgo, signal: AbortSignal, o: WriteOptions = {}): Promise<WriteResult> {
    const tail = `${block.offset} ${block.length} ${algo}${o.defer ? ' defer' : ''}\n`;
    let line: string;
    let zeroBytes = block.length;
    if (chunks === 'zero') line = await this.request(`Z ${tail}`, signal);
    else {
      const payload: Payload = { length: block.length, chunks, framed: o.framed === true, onWire: o.onWire, onAck: o.onAck, zeroBytes: 0 };
      line = await this.request(`${o.framed ? 'X' : 'W'} ${tail}`, signal, payload);
      zeroBytes = payload.zeroBytes;
    }
    const { words, ...r } = this.written(line, algo);
    return { ...r, deferred: o.defer === true && words.includes('deferred'), zeroBytes };
  }

  /** `Y`: flush the target; every write answered before this request is then durable. */
  async flush(signal: AbortSignal): Promise<void> {
    this.partAnswer(await this.request('Y 0 0\n', signal));
  }

  /** Write a staged block file (SFTP, rsync; exactly `block.length` bytes) at its offset; the helper removes it. */
  async writeStaged(block: BlockRef, remoteFile: string, algo: ChecksumAlgo, signal: AbortSignal): Promise<{ checksum: string; zeros?: ZeroedHow }> {
    validateRemotePath(remoteFile, 'staged block file');
    const { words: _, ...r } = this.written(await this.request(`F ${block.offset} ${block.length} ${algo} ${remoteFile}\n`, signal), algo);
    return r;
  }

  /**
   * Write a block as parts (raw, gzip, zero), pipelined, then flush and read back (`S`): the
   * path for compression, zero runs inside a block and (`delta`) only a block's differing parts.
   * `onWire` hears payload bytes sent, `onAck` the block bytes of each part answered for.
   */
  async writeParts(block: BlockRef, parts: AsyncIterable<BlockPart>, algo: ChecksumAlgo, signal: AbortSignal, o: Pick<WriteOptions, 'onWire' | 'onAck'> = {}, delta = false): Promise<{ checksum: string; zeroBytes: number; zeros?: ZeroedHow }> {
    /** Block bytes of the parts sent and not yet answered, oldest first (answers come in order). */
    const unanswered: number[] = [];
    let zeroBytes = 0;
    async function* items(): AsyncGenerator<Request> {
      let covered = 0;
      for await (const p of parts) {
        if (p.offset < block.offset || p.offset + p.length > block.offset + block.length) throw new DdtError('PAYLOAD', `block ${block.index}: a part lies outside the block`);
        covered += p.length;
        unanswered.push(p.length);
        if (p.kind === 'zero') {
          zeroBytes += p.length;
          yield { head: `E ${p.offset} ${p.length}\n` };
        }
        else {
          o.onWire?.(p.data.length);
          yield p.kind === 'raw' ? { head: `P ${p.offset} ${p.length}\n`, data: p.data } : { head: `G ${p.offset} ${p.length} ${p.data.length}\n`, data: p.data };
        }
      }
      // A delta's parts are the units that differ; the rest of the block is on the target already.
      if (delta ? covered > block.length : covered !== block.length) throw new DdtError('PAYLOAD', `block ${block.index}: parts cover ${covered} of ${block.length} bytes`);
      yield { head: `S ${block.offset} ${block.length} ${algo}\n` };
    }
    let last = '';
    for await (const line of this.requests(items(), signal, 8)) {
      // Every part's answer comes before S's, and S is sent only after the last part.
      if (unanswered.length === 0) last = line;
      else {
        this.partAnswer(line);
        const bytes = unanswered.shift()!; // not inside `?.()`, which skips its arguments
        o.onAck?.(bytes);
      }
    }
    const { words: _, ...r } = this.written(last, algo);
    return { ...r, zeroBytes };
  }

  /** Checksum of the target range as it is now. */
  async hash(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return this.digestOf(await this.request(`H ${block.offset} ${block.length} ${algo}\n`, signal), algo);
  }

  /** Checksums of blocks (and units, where asked): `V` requests, two in flight, one ddt-hash each. */
  async *hashMany(blocks: BlockRef[], algo: ChecksumAlgo, signal: AbortSignal, units?: UnitSpec): AsyncGenerator<BlockDigest> {
    const reqs = hashRequests(blocks, algo, units);
    // The stream may wait while the sender catches up: silent for as long as hashing its bytes may take.
    const bytes = blocks.reduce((n, b) => n + b.length, 0);
    const lines = this.requests(reqs.map((r) => ({ head: r.text, answers: r.lines })), signal, 2, ChannelWorker.silenceFor(bytes));
    try {
      for (const req of reqs) yield* digestsOf(req.blocks, lines, algo, units);
    } finally {
      await lines.return(undefined); // also after a bad answer: the worker is settled, not left busy
    }
  }

  /** One request (header, then the payload if any), its answer line. */
  private async request(header: string, signal: AbortSignal, payload?: Payload): Promise<string> {
    const end = this.begin(signal, ChannelWorker.silenceFor(lengthOf(header)));
    try {
      const answer = this.expectAnswer();
      await this.send(Buffer.from(header, 'latin1'));
      if (payload) await this.sendPayload(payload);
      return await answer;
    } catch (err) {
      throw this.failure(err, signal);
    } finally {
      this.settle();
      end();
    }
  }

  /**
   * Send requests without waiting for each answer (at most `ahead` outstanding) and yield the
   * answers in order: many blocks hashed, or a block's parts written, with no round trip each.
   * A request answered with several lines (`V`) says how many.
   */
  private async *requests(items: AsyncIterable<Request> | Iterable<Request>, signal: AbortSignal, ahead = 1, silenceMs = ChannelWorker.silenceFor(64 << 20)): AsyncGenerator<string> {
    const end = this.begin(signal, silenceMs);
    const answers: Promise<string>[][] = [];
    const it = Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : toAsync(items[Symbol.iterator]());
    let exhausted = false;
    try {
      for (;;) {
        while (!exhausted && answers.length < ahead) {
          const r = await this.death.race(it.next());
          if (r.done) {
            exhausted = true;
            break;
          }
          answers.push(Array.from({ length: r.value.answers ?? 1 }, () => this.expectAnswer()));
          await this.send(Buffer.from(r.value.head, 'latin1'));
          if (r.value.data) await this.send(r.value.data);
        }
        const next = answers.shift();
        if (!next) return;
        for (const answer of next) yield await answer;
      }
    } catch (err) {
      void it.return?.()?.catch(() => undefined);
      throw this.failure(err, signal);
    } finally {
      this.settle();
      end();
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
  }

  /**
   * `length` bytes from `chunks`: as they are, or framed as `X` frames (a run of zero chunks
   * becomes one `Z` frame, any other chunk a `D` frame with its bytes).
   */
  private async sendPayload(p: Payload): Promise<void> {
    const it = p.chunks[Symbol.asyncIterator]();
    let sent = 0;
    let zeros = 0;
    try {
      for (;;) {
        // Race the source too: a stalled read must not keep an aborted request alive.
        const r = await this.death.race(it.next());
        if (r.done) break;
        const chunk = r.value;
        if (sent + chunk.length > p.length) {
          this.destroy('payload longer than its header');
          throw new DdtError('PAYLOAD', `${this.label}: block payload exceeds ${p.length} bytes`);
        }
        sent += chunk.length;
        if (chunk.length === 0) continue;
        const zero = isZero(chunk);
        if (zero) p.zeroBytes += chunk.length;
        if (p.framed && zero) {
          zeros += chunk.length;
          continue;
        }
        if (p.framed) {
          if (zeros > 0) void this.send(frameHeader('Z', zeros)).catch(() => undefined);
          // Header and bytes queued together; the header's failure is the bytes' failure too.
          void this.send(frameHeader('D', chunk.length)).catch(() => undefined);
        }
        await this.send(chunk);
        p.onWire?.(chunk.length);
        p.onAck?.(zeros + chunk.length);
        zeros = 0;
      }
      if (zeros > 0 && sent === p.length) await this.send(frameHeader('Z', zeros));
      p.onAck?.(zeros);
    } catch (err) {
      void it.return?.()?.catch(() => undefined); // let the source release its buffers
      throw err;
    }
    if (sent !== p.length) {
      this.destroy('payload shorter than its header');
      throw new DdtError('PAYLOAD', `${this.label}: block payload has ${sent} of ${p.length} bytes`);
    }
  }

  /**
   * Resolves when the channel has taken the whole buffer (its write callback). Until then it may
   * still reference it, and the source reuses its read buffers once we ask for the next chunk;
   * the channel window bounds what is in flight anyway.
   */
  private send(buf: Buffer): Promise<void> {
    if (this.dead) return Promise.reject(this.deadError());
    const written = new Promise<void>((resolve, reject) => {
      this.ch.write(buf, (err?: Error | null) => {
        if (err) return reject(err);
        this.heard();
        resolve();
      });
    });
    return this.death.race(written);
  }

  private partAnswer(line: string): void {
    if (line === 'OK') return;
    throw helperError(this.label, line) ?? this.protocolError('unexpected answer to a block part', line);
  }

  /** A write's answer: the read-back checksum, how its zeros were made, the other words. */
  private written(line: string, algo: ChecksumAlgo): { checksum: string; zeros?: ZeroedHow; words: string[] } {
    const { head, words } = answerWords(line);
    const zeros = zerosOf(words);
    return { checksum: this.digestOf(head, algo), words, ...(zeros && { zeros }) };
  }

  private digestOf(line: string, algo: ChecksumAlgo): string {
    if (line.startsWith('OK ')) {
      const hex = line.slice(3).trim();
      if (isDigest(algo, hex)) return hex;
      throw this.protocolError('bad checksum from helper', line);
    }
    throw helperError(this.label, line) ?? this.protocolError('unexpected answer from helper', line);
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
