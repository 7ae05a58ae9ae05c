import { createHasher, type StreamHasher } from './hasher.js';
import type { ChecksumAlgo } from './types.js';

/**
 * A block's checksum and, where it spans more than one unit, each unit's, from its bytes as they
 * come in pieces of any size: what the remote helper's `V` prints for the same block.
 */
export class BlockDigester {
  private readonly whole: StreamHasher;
  private unit?: StreamHasher;
  private readonly units: string[] = [];
  private inUnit = 0;

  constructor(
    private readonly blockLength: number,
    algo: ChecksumAlgo,
    private readonly unitSpec?: { unit: number; algo: ChecksumAlgo },
  ) {
    this.whole = createHasher(algo);
    if (unitSpec && blockLength > unitSpec.unit) this.unit = createHasher(unitSpec.algo);
  }

  update(data: Uint8Array): void {
    this.whole.update(data);
    if (!this.unit || !this.unitSpec) return;
    for (let at = 0; at < data.length; ) {
      const take = Math.min(data.length - at, this.unitSpec.unit - this.inUnit);
      this.unit.update(at === 0 && take === data.length ? data : data.subarray(at, at + take));
      at += take;
      this.inUnit += take;
      if (this.inUnit === this.unitSpec.unit) this.nextUnit();
    }
  }

  /** The block's checksum, and its units' (undefined for a block of one unit). */
  digest(): { checksum: string; units?: string[] } {
    if (!this.unit) return { checksum: this.whole.digest() };
    if (this.inUnit > 0) this.nextUnit();
    return { checksum: this.whole.digest(), units: this.units };
  }

  private nextUnit(): void {
    this.units.push(this.unit!.digest());
    this.unit = createHasher(this.unitSpec!.algo);
    this.inUnit = 0;
  }
}

/** The byte ranges (absolute) of the units whose checksums differ, adjacent ones merged. */
export function differingUnits(block: { offset: number; length: number }, unit: number, a: string[], b: string[]): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (let i = 0; i * unit < block.length; i++) {
    if (a[i] !== undefined && a[i] === b[i]) continue;
    const offset = block.offset + i * unit;
    const length = Math.min(unit, block.length - i * unit);
    const last = out[out.length - 1];
    if (last && last.offset + last.length === offset) last.length += length;
    else out.push({ offset, length });
  }
  return out;
}
