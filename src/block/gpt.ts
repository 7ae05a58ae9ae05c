/**
 * GPT (GUID partition table) seen from a whole-disk copy. A GPT keeps a backup header in the
 * disk's last sector and the backup partition array just before it; copied onto a larger disk,
 * both stay where the source ended, and tools then call the table damaged (`sfdisk --verify`:
 * "The backup GPT table is not on the end of the device"). `relocateGpt` computes what
 * `sfdisk --relocate gpt-bak-std` writes, byte for byte: the protective MBR's size, the primary
 * header pointing at the new backup, and the backup array and header at the new end.
 * Pure: buffers in, buffers out. Layout: UEFI specification, "GUID Partition Table".
 */
import { crc32 } from './crc32.js';
import type { ByteRange } from './types.js';

const SIGNATURE = 'EFI PART';
/** Sector sizes a GPT is found at: LBA 1 begins one sector into the disk. */
export const GPT_SECTOR_SIZES = [512, 4096] as const;
/** Bytes to read from the start of a disk to find a GPT header at either sector size. */
export const GPT_PROBE_BYTES = 2 * 4096;

export interface GptHeader {
  sectorSize: number;
  headerSize: number;
  /** where the backup header is (the source disk's last sector, when it is standard) */
  alternateLba: bigint;
  firstUsableLba: bigint;
  lastUsableLba: bigint;
  entriesLba: bigint;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

/** The GPT header at LBA 1 of a disk's first bytes, or undefined (no GPT, or a damaged header). */
export function findGpt(head: Buffer): GptHeader | undefined {
  for (const sectorSize of GPT_SECTOR_SIZES) {
    if (head.length < 2 * sectorSize) continue;
    const h = head.subarray(sectorSize, 2 * sectorSize);
    if (h.toString('latin1', 0, 8) !== SIGNATURE) continue;
    const headerSize = h.readUInt32LE(12);
    if (headerSize < 92 || headerSize > sectorSize) return undefined;
    if (headerCrc(h, headerSize) !== h.readUInt32LE(16)) return undefined;
    const entrySize = h.readUInt32LE(84);
    const entryCount = h.readUInt32LE(80);
    if (entrySize < 128 || entrySize % 8 !== 0 || entryCount === 0 || entryCount * entrySize > 1 << 24) return undefined;
    return {
      sectorSize,
      headerSize,
      alternateLba: h.readBigUInt64LE(32),
      firstUsableLba: h.readBigUInt64LE(40),
      lastUsableLba: h.readBigUInt64LE(48),
      entriesLba: h.readBigUInt64LE(72),
      entryCount,
      entrySize,
      entriesCrc: h.readUInt32LE(88),
    };
  }
  return undefined;
}

/** Bytes of the partition entry array. */
export function entriesLength(g: GptHeader): number {
  return g.entryCount * g.entrySize;
}

/** Whether a disk of `size` bytes has this header's backup in its last sector. */
export function backupAtEnd(g: GptHeader, size: number): boolean {
  return g.alternateLba === BigInt(Math.floor(size / g.sectorSize) - 1);
}

/** One range to write on the target, and its bytes. */
export interface GptWrite extends ByteRange {
  data: Buffer;
}

/**
 * The writes that move the backup GPT to the end of a larger target: LBA 0-1 (protective MBR,
 * primary header) and the backup array and header in the target's last sectors. `head` is the
 * source's first two sectors (at least), `entries` its partition array, checked against its
 * CRC so a damaged table is never spread; `sizes` in bytes.
 */
export function relocateGpt(g: GptHeader, head: Buffer, entries: Buffer, sizes: { source: number; target: number }): GptWrite[] {
  const targetSize = sizes.target;
  const ss = g.sectorSize;
  if (entries.length !== entriesLength(g) || crc32(entries) !== g.entriesCrc) throw new Error('the GPT partition array does not match its checksum');
  if (targetSize % ss !== 0) throw new Error(`the target's size is not a multiple of the GPT's ${ss}-byte sectors`);
  const last = BigInt(targetSize / ss - 1);
  const arraySectors = BigInt(Math.ceil(entries.length / ss));
  const lastUsable = last - arraySectors - 1n;
  if (lastUsable < g.lastUsableLba) throw new Error('the target is not larger than the GPT says the source is');
  const backupEntriesLba = last - arraySectors;

  const start = Buffer.from(head.subarray(0, 2 * ss));
  const primary = start.subarray(ss, 2 * ss);
  primary.writeBigUInt64LE(last, 32);
  primary.writeBigUInt64LE(lastUsable, 48);
  sealHeader(primary, g.headerSize);
  growProtectiveMbr(start.subarray(0, ss), BigInt(Math.floor(sizes.source / ss) - 1), last);

  const backup = Buffer.alloc(Number(arraySectors + 1n) * ss);
  entries.copy(backup, 0);
  const header = backup.subarray(Number(arraySectors) * ss);
  primary.copy(header, 0, 0, g.headerSize);
  header.writeBigUInt64LE(last, 24); // MyLBA
  header.writeBigUInt64LE(1n, 32); // AlternateLBA: the primary
  header.writeBigUInt64LE(backupEntriesLba, 72);
  sealHeader(header, g.headerSize);
  return [
    { offset: 0, length: start.length, data: start },
    { offset: Number(backupEntriesLba) * ss, length: backup.length, data: backup },
  ];
}

/** CRC32 of the header's first `size` bytes with its own CRC field taken as zero. */
function headerCrc(h: Buffer, size: number): number {
  const copy = Buffer.from(h.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  return crc32(copy);
}

function sealHeader(h: Buffer, size: number): void {
  h.writeUInt32LE(headerCrc(h, size), 16);
}

/**
 * A protective MBR's 0xEE entry that covered the whole source disk (its size field is the last
 * LBA, capped at 32 bits) is made to cover the target; a hybrid MBR is left alone.
 */
function growProtectiveMbr(mbr: Buffer, oldLast: bigint, newLast: bigint): void {
  if (mbr.readUInt16LE(510) !== 0xaa55) return;
  const cap = (n: bigint) => Number(n > 0xffffffffn ? 0xffffffffn : n);
  for (let i = 0; i < 4; i++) {
    const e = 446 + 16 * i;
    if (mbr[e + 4] !== 0xee || mbr.readUInt32LE(e + 8) !== 1) continue;
    if (mbr.readUInt32LE(e + 12) === cap(oldLast)) mbr.writeUInt32LE(cap(newLast), e + 12);
    return;
  }
}
