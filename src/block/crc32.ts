/**
 * CRC-32 (IEEE 802.3, the one GPT headers and partition arrays carry). node:zlib has `crc32`
 * only from Node 20.15 / 22.2, and ddt runs on any Node 20; a GPT needs it for a few KiB, so a
 * table is fast enough.
 */
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
