/** Small pieces of the serve protocol's encoding (native/README.md describes the protocol). */

/** One request: its header line(s), its payload, and how many answer lines it gets (default 1). */
export interface Request {
  head: string;
  data?: Buffer;
  answers?: number;
}

/** A request's payload: `length` bytes from `chunks`, as they are or as `X` frames. */
export interface Payload {
  length: number;
  chunks: AsyncIterable<Buffer>;
  framed: boolean;
  onWire?: (bytes: number) => void;
  /** filled in as the bytes go: bytes in all-zero chunks */
  zeroBytes: number;
}

/** `X` frame header: kind, spaces, length, newline; 16 bytes (the helper reads exactly that). */
export function frameHeader(kind: 'D' | 'Z', length: number): Buffer {
  return Buffer.from(`${kind}${String(length).padStart(14)}\n`, 'latin1');
}

/** The length field of a request header (`V offset length …`). */
export function lengthOf(header: string): number {
  return Number(header.split(' ')[2]) || 0;
}

export async function* toAsync<T>(it: Iterator<T>): AsyncGenerator<T> {
  for (let r = it.next(); !r.done; r = it.next()) yield r.value;
}
