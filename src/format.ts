import { DdtError } from './errors.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** IEC bytes: `512 B`, `64.0 KiB`, `1.5 GiB` (one decimal above bytes). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '? B';
  const sign = n < 0 ? '-' : '';
  let value = Math.abs(n);
  if (value < 1024) return `${sign}${Math.round(value)} B`;
  let unit = 0;
  // Compare the rounded figure, so 1023.96 KiB shows as `1.0 MiB`, not `1024.0 KiB`.
  while (unit < UNITS.length - 1 && Number(value.toFixed(1)) >= 1024) {
    value /= 1024;
    unit++;
  }
  return `${sign}${value.toFixed(1)} ${UNITS[unit]}`;
}

/** `98.3 MiB/s` */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** `12s`, `4m05s`, `1h02m03s`; `?` for an unknown (null or non-finite) duration. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) return '?';
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (x: number) => String(x).padStart(2, '0');
  if (h > 0) return `${h}h${pad(m)}m${pad(s)}s`;
  if (m > 0) return `${m}m${pad(s)}s`;
  return `${s}s`;
}

const SIZE = /^(\d+)(?:([kmgt])(?:i?b)?|b)?$/i;
const POWER: Record<string, number> = { k: 1, m: 2, g: 3, t: 4 };

/**
 * Parses `--block-size` / `--bwlimit` values: an integer with an optional K, M, G or T suffix
 * (powers of 1024, case-insensitive, optionally followed by `B` or `iB`), or a plain `B`.
 * Integers only: `1.5G` is rejected rather than rounded, so a size is always exactly what was typed.
 * @param name what to call the value in the error, e.g. `--block-size`
 */
export function parseSize(text: string | number, name = 'size'): number {
  const raw = String(text).trim();
  const match = SIZE.exec(raw);
  const value = match ? Number(match[1]) * 1024 ** (match[2] ? POWER[match[2].toLowerCase()] : 0) : NaN;
  if (!Number.isSafeInteger(value)) {
    const why = match ? 'too large' : 'expected an integer with an optional K, M, G or T suffix (powers of 1024), e.g. 64M';
    throw new DdtError('BAD_SIZE', `invalid ${name} "${String(text)}": ${why}`);
  }
  return value;
}
