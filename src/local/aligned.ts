/**
 * Memory on a 4 KiB boundary, as O_DIRECT reads want it: Node's own buffers are only 16 bytes
 * aligned. A WebAssembly.Memory starts on a page boundary. Each one reserves address space of its
 * own (≈ 10 GiB of it on x64, never touched, only what `length` asks for is ever backed), which
 * costs nothing real for the few dozen buffers a run keeps; 2,000 of them were created here
 * without complaint. Where the address space is limited (`ulimit -v`) it may throw: callers then
 * read through the page cache.
 */
export function alignedBuffer(length: number): Buffer {
  const pages = Math.max(1, Math.ceil(length / 65536));
  return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer, 0, length);
}
