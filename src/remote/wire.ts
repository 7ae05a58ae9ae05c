/** Small pieces of the serve protocol's encoding (native/README.md describes the protocol). */

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
