/**
 * Small pieces of the serve protocol's encoding (native/README.md describes the protocol): `X`
 * frame headers, a request's length field, and the words an answer line carries after its
 * checksum.
 */
import type { ZeroedHow } from '../block/types.js';

/** One request: its header line(s), its payload, and how many answer lines it gets (default 1). */
export interface Request {
  head: string;
  data?: Buffer;
  answers?: number;
}

/** `X` frame header: kind, spaces, length, newline; 16 bytes (the helper reads exactly that). */
export function frameHeader(kind: 'D' | 'Z', length: number): Buffer {
  return Buffer.from(`${kind}${String(length).padStart(14)}\n`, 'latin1');
}

/** The length field of a request header (`V offset length …`). */
export function lengthOf(header: string): number {
  return Number(header.split(' ')[2]) || 0;
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
