/**
 * What the remote host must have, and where to get it: a missing tool is refused (exit 2)
 * before anything is written, naming the package on the common distributions.
 */
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import type { RemoteProbe } from './probe.js';

/** Packages that provide a tool: Debian/Ubuntu, Alpine, RHEL/Fedora. */
const PACKAGES: Record<string, [string, string, string]> = {
  xxhsum: ['xxhash', 'xxhash', 'xxhash (EPEL)'],
  sha256sum: ['coreutils', 'coreutils', 'coreutils'],
  dd: ['coreutils', 'coreutils', 'coreutils'],
  gzip: ['gzip', 'gzip', 'gzip'],
  rsync: ['rsync', 'rsync', 'rsync'],
};

/** "install <packages>" for a tool. */
export function installHint(tool: string): string {
  const [deb, alpine, rhel] = PACKAGES[tool] ?? ['coreutils', 'coreutils', 'coreutils'];
  return `install ${tool} there (package ${deb} on Debian/Ubuntu, ${alpine} on Alpine, ${rhel} on RHEL/Fedora)`;
}

/** Refuse a host where a tool the helper needs is absent (a dd without byte offsets, no hash tool). */
export function checkRemoteTools(p: RemoteProbe, host: string): void {
  const missing = p.missing.filter((t) => t !== 'sha256sum'); // a missing hash tool is the checksum's refusal
  if (missing.length) {
    const what = missing.map((t) => (t === 'dd' ? 'a dd that takes skip_bytes, count_bytes, fullblock, seek_bytes, notrunc and fsync' : t)).join(', ');
    throw new DdtError('TOOL_MISSING', `${host} lacks ${what}, which the ddt helper needs: ${missing.map(installHint).join('; ')}`);
  }
}

/**
 * The block checksum: what was asked, else the fastest the remote host can compute. Refused
 * (exit 2) when it can compute none, or not the one asked for (or recorded by the job).
 */
export function chooseChecksum(wanted: ChecksumAlgo | 'auto', p: RemoteProbe, host: string): ChecksumAlgo {
  const xxh = p.hashTools.includes('xxhsum');
  const sha = p.hashTools.includes('openssl') || p.hashTools.includes('sha256sum');
  if (!xxh && !sha) throw new DdtError('TOOL_MISSING', `${host} has no working checksum tool (xxhsum, openssl or sha256sum): ${installHint('sha256sum')}, or ${installHint('xxhsum')}`);
  if (wanted === 'xxh64' && !xxh) throw new DdtError('TOOL_MISSING', `${host} has no xxhsum for --checksum xxh64: ${installHint('xxhsum')}, or use --checksum sha256`);
  if (wanted === 'sha256' && !sha) throw new DdtError('TOOL_MISSING', `${host} has neither sha256sum nor openssl for sha256: ${installHint('sha256sum')}`);
  if (wanted !== 'auto') return wanted;
  return xxh ? 'xxh64' : 'sha256';
}
