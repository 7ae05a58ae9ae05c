import { DdtError } from '../errors.js';

const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90`, `90s`, `10m`, `2h`, `1d`, `500ms` → milliseconds (bare numbers are seconds). */
export function parseDuration(text: string, name: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new DdtError('BAD_OPTION', `invalid ${name} "${text}": expected e.g. 90s, 10m, 2h`);
  return Number(m[1]) * UNIT[m[2] ?? 's']!;
}
