/**
 * What a helper worker and its client share beyond header lines: what a whole-block write takes
 * and gives, `X` frame headers, and the words an answer line carries after its checksum.
 */
import type { ZeroedHow } from '../block/types.js';

/** What a whole-block write gave: the read-back checksum, whether its flush is deferred. */
export interface WriteResult {
  checksum: string;
  deferred: boolean;
  /** bytes of the block in all-zero chunks (sent or not) */
  zeroBytes: number;
  /** the target made the block's zero ranges holes or had the device zero them (else: written) */
  zeros?: ZeroedHow;
}

export interface WriteOptions {
  /**
   * The helper may leave the flush to a later `flush()`: where the write and the read-back both
   * bypass the page cache (O_DIRECT), `deferred` says the checksum is of bytes the device holds,
   * not yet durable.
   */
  defer?: boolean;
  /** Send the block as `X` frames: zero chunks as a length only. */
  framed?: boolean;
  /** Hears payload bytes as they go on the channel. */
  onWire?: (bytes: number) => void;
}

/** `X` frame header: kind, spaces, length, newline; 16 bytes (the helper reads exactly that). */
export function frameHeader(kind: 'D' | 'Z', length: number): Buffer {
  return Buffer.from(`${kind}${String(length).padStart(14)}\n`, 'latin1');
}

/**
 * An answer line's head (`OK <hex>`) and the words after it: `deferred`, and `zeros=hole` or
 * `zeros=offload` where the block's zero ranges became holes or were zeroed by the device.
 */
export function answerWords(line: string): { head: string; words: string[] } {
  if (!line.startsWith('OK ')) return { head: line, words: [] };
  const [hex = '', ...words] = line.slice(3).trim().split(' ');
  return { head: `OK ${hex}`, words };
}

export function zerosOf(words: string[]): ZeroedHow | undefined {
  if (words.includes('zeros=hole')) return 'hole';
  if (words.includes('zeros=offload')) return 'offload';
  return undefined;
}

export async function* toAsync<T>(it: Iterator<T>): AsyncGenerator<T> {
  for (let r = it.next(); !r.done; r = it.next()) yield r.value;
}
