import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { BlockPayload, BlockRef, BlockSink, ZeroMode } from '../block/types.js';
import { isZero, zeroChunk } from '../block/zero.js';
import { createHasher } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { DEFAULT_CHUNK_SIZE } from './block-reader.js';
import { hashLocally, localHasher } from './local-hasher.js';
import { LocalZeroer } from './zero-range.js';

const DIRECT_ALIGN = 4096;

/**
 * A local file or block device as a target. Writes are positioned and flushed with fdatasync
 * before the read-back; the read-back goes through `dd iflag=direct` where the target accepts
 * O_DIRECT (Node buffers are not sector-aligned), so the checksum comes from the disk, not
 * from the page cache that just received the data.
 */
export class LocalTarget implements BlockSink {
  private directWorks: boolean | undefined;
  readonly takesDelta = true;
  /**
   * `--skip-identical` and resume's re-check (pull, copy): the blocks hashed in order, with their
   * units where asked, by ddt-hash, O_DIRECT where the target takes it, one process for the
   * stream. Without a build for this machine, callers hash block by block with `hashAt` (from
   * the disk too, not from the page cache), without units.
   */
  readonly hashStream?: BlockSink['hashStream'];

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly chunkSize: number,
    /** Blocks written at once (`--channels` of a copy; the remote source's workers for a pull). */
    readonly capacity: number,
    /** Zero blocks and zero chunks become holes or offloads where this can (`--no-sparse`: never). */
    private readonly zeroer?: LocalZeroer,
  ) {
    const bin = localHasher();
    if (bin) this.hashStream = (blocks, algo, signal, units) => hashLocally(bin, path, blocks, algo, signal, units);
  }

  /** Open for writing without truncating or creating (the caller decides about creation). */
  static async open(path: string, opts: { readOnly?: boolean; chunkSize?: number; capacity?: number; zeros?: ZeroMode } = {}): Promise<LocalTarget> {
    let fh: FileHandle;
    try {
      fh = await fs.open(path, opts.readOnly ? 'r' : 'r+');
    } catch (err) {
      throw new DdtError('TARGET_INVALID', `cannot open ${path}${opts.readOnly ? '' : ' for writing'}: ${(err as Error).message}`, { cause: err });
    }
    const zeroer = opts.readOnly ? undefined : await LocalZeroer.open(path, fh, opts.zeros ?? 'write');
    return new LocalTarget(path, fh, opts.chunkSize ?? DEFAULT_CHUNK_SIZE, opts.capacity ?? Infinity, zeroer?.active ? zeroer : undefined);
  }

  async writeAt(block: BlockRef, payload: BlockPayload, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    let pos = 0;
    // No link here: what is written is what moved (for a pull, every data byte came over the
    // wire to get here), and the target has it once the write returns.
    const moved = payload.kind === 'data' ? payload : undefined;
    /** A run of zero chunks not yet made zero on the target: [zeroFrom, pos). */
    let zeroFrom = -1;
    let zeroed = false;
    const settleZeros = async (): Promise<void> => {
      if (zeroFrom < 0) return;
      const from = zeroFrom;
      zeroFrom = -1;
      const how = await this.zeroer!.zero(block.offset + from, pos - from);
      if (how) {
        zeroed = true;
        payload.onZeroed?.(how, pos - from);
        return;
      }
      for (let at = from; at < pos; ) {
        const n = Math.min(this.chunkSize, pos - at);
        await this.writeFully(zeroChunk(n), block.offset + at);
        at += n;
      }
    };
    const put = async (chunk: Buffer): Promise<void> => {
      signal.throwIfAborted();
      if (pos + chunk.length > block.length) throw new Error(`payload for block ${block.index} is longer than the block`);
      if (this.zeroer && isZero(chunk)) {
        if (zeroFrom < 0) zeroFrom = pos;
      } else {
        await settleZeros();
        await this.writeFully(chunk, block.offset + pos);
      }
      pos += chunk.length;
      moved?.onWire?.(chunk.length);
      moved?.onAck?.(chunk.length);
    };
    if (payload.kind === 'delta') {
      // Only the parts that differ; the rest of the block is here already. Proven as a whole below.
      for await (const part of payload.parts) {
        if (part.offset < block.offset || part.offset + part.length > block.offset + block.length) throw new Error(`a part of block ${block.index} lies outside it`);
        if (part.kind === 'gzip') throw new Error('a local target takes no compressed parts');
        // A zero run waiting to be made holes ends where this part does not continue it.
        if (part.offset - block.offset !== pos) await settleZeros();
        pos = part.offset - block.offset;
        await put(part.kind === 'zero' ? zeroChunk(part.length) : part.data);
        // A pull's delta: these bytes crossed the wire from the remote source.
        if (part.kind === 'raw') payload.onWire?.(part.data.length);
      }
      await settleZeros();
      pos = block.length;
    } else if (payload.kind === 'zero') {
      while (pos < block.length) await put(zeroChunk(Math.min(this.chunkSize, block.length - pos)));
    } else if (payload.kind === 'data') {
      for await (const chunk of payload.chunks) await put(chunk);
    } else {
      throw new Error('a local target takes whole blocks, not parts');
    }
    await settleZeros();
    if (pos !== block.length) throw new Error(`payload for block ${block.index} was ${pos} bytes, expected ${block.length}`);
    // A punch or an offload changes the target's metadata, not only its data.
    await (zeroed ? this.fh.sync() : this.fh.datasync());
    return this.hashAt(block, algo, signal);
  }

  private async writeFully(chunk: Buffer, at: number): Promise<void> {
    for (let done = 0; done < chunk.length; ) {
      const { bytesWritten } = await this.fh.write(chunk, done, chunk.length - done, at + done);
      done += bytesWritten;
    }
  }

  async hashAt(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    signal.throwIfAborted();
    const aligned = block.offset % DIRECT_ALIGN === 0 && block.length % DIRECT_ALIGN === 0;
    if (aligned && this.directWorks !== false) {
      try {
        const sum = await this.hashDirect(block, algo, signal);
        this.directWorks = true;
        return sum;
      } catch (err) {
        if (this.directWorks === true || signal.aborted) throw err;
        this.directWorks = false; // e.g. tmpfs refuses O_DIRECT: fall back to normal reads
      }
    }
    return this.hashBuffered(block, algo, signal);
  }

  private async hashBuffered(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    const hasher = createHasher(algo);
    const buf = Buffer.allocUnsafeSlow(Math.min(this.chunkSize, block.length));
    for (let pos = 0; pos < block.length; ) {
      signal.throwIfAborted();
      const want = Math.min(buf.length, block.length - pos);
      const { bytesRead } = await this.fh.read(buf, 0, want, block.offset + pos);
      if (bytesRead === 0) throw new Error(`target ${this.path} ended at byte ${block.offset + pos}`);
      hasher.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return hasher.digest();
  }

  private hashDirect(block: BlockRef, algo: ChecksumAlgo, signal: AbortSignal): Promise<string> {
    return new Promise((resolve, reject) => {
      const hasher = createHasher(algo);
      let got = 0;
      const dd = spawn(
        'dd',
        [`if=${this.path}`, 'bs=1M', 'iflag=direct,skip_bytes,count_bytes', `skip=${block.offset}`, `count=${block.length}`, 'status=none'],
        { stdio: ['ignore', 'pipe', 'pipe'], signal },
      );
      let stderr = '';
      dd.stdout.on('data', (d: Buffer) => {
        hasher.update(d);
        got += d.length;
      });
      dd.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      dd.on('error', reject);
      dd.on('close', (code) => {
        if (code === 0 && got === block.length) resolve(hasher.digest());
        else reject(new Error(`read-back of block ${block.index} with dd failed (exit ${code}, ${got} bytes): ${stderr.trim()}`));
      });
    });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => {});
  }
}
