/** The `probe` answer of ddt-helper.sh, typed. One round trip tells everything setup needs. */
import type { DeviceIdentity } from '../block/identity.js';
import { DdtError } from '../errors.js';

/** What `identity PATH` tells (also in the probe's answer, as id_*): kind, size, readable, identity. */
export interface RemotePathInfo {
  kind: 'file' | 'block' | 'other';
  size: number;
  readable: boolean;
  identity: DeviceIdentity;
}

export interface RemoteProbe {
  exists: boolean;
  type: 'block' | 'file' | 'other';
  /** Bytes. */
  size: number;
  /** Logical sector size in bytes. */
  sector: number;
  /** The device or one of its partitions is mounted (matched by path and by major:minor). */
  mounted: boolean;
  swap: boolean;
  /** Devices stacked on it (dm, md, a loop device backed by a file target). */
  holders: string[];
  writable: boolean;
  /** Bytes available in the remote dir (staging space for `--via sftp`). */
  free: number;
  /** The remote dir resolved to an absolute path ('' when it does not exist). */
  dir?: string;
  /** The remote dir exists and the remote user may create files in it. */
  dirWritable?: boolean;
  /** Size of the filesystem holding the remote dir (for the default `--remote-reserve`). */
  dirSize?: number;
  xxhsum: boolean;
  sha256sum: boolean;
  openssl: boolean;
  /** dd understands seek_bytes/skip_bytes/count_bytes/fullblock: required by the helper. */
  seekBytes: boolean;
  nocache: boolean;
  /** `dd iflag=direct` works on the target: read-back bypasses the page cache. */
  direct: boolean;
  cores: number;
  /** perl runs there: `X` (zero runs inside a block sent as no bytes) costs one process per block. */
  perl: boolean;
  pid: number;
  /** Hash tools that printed the right digest, best first (`xxhsum`, `openssl`, `sha256sum`). */
  hashTools: string[];
  /** Tools the helper needs that are absent with nothing to fall back on (a run is refused). */
  missing: string[];
  /** gzip is there (compressed parts). */
  gzip: boolean;
  /** The probed path's identity (`identity`'s answer, given with the probe). */
  pathInfo: RemotePathInfo;
  /** How the helper makes a zero range of this target when zeros may be holes or offloaded (`sparse`), and with `--discard`. */
  zeroSparse: ZeroHow;
  zeroDiscard: ZeroHow;
  /** `uname -m`: which build of the streaming hasher can run there ('' unknown). */
  arch?: string;
  /**
   * The host's tools as the probe found them, in the form `serve` takes (its HOSTINFO argument),
   * so that each worker does not ask again; absent when the answer lacks a key.
   */
  hostFacts?: string;
}

/**
 * How a zero range is made: `punch` (a hole in a file; on a device the kernel's write-zeroes
 * with unmap allowed), `zeroout` (the device zeroes it), `discard` (unmapped, reads as zeros),
 * `keep` (left alone where it already reads as zeros), `write` (zeros written).
 */
export type ZeroHow = 'punch' | 'zeroout' | 'discard' | 'keep' | 'write';
const ZERO_HOWS: readonly ZeroHow[] = ['punch', 'zeroout', 'discard', 'keep', 'write'];

function keyValues(text: string): Map<string, string> {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return kv;
}

/** `identity`'s keys (each maybe with a prefix, as in the probe's id_*), typed. */
export function parsePathInfo(kv: Map<string, string>, prefix = ''): RemotePathInfo {
  const get = (k: string) => kv.get(prefix + k);
  const kindText = get('kind');
  const kind = kindText === 'file' || kindText === 'block' ? kindText : 'other';
  const size = Number(get('size') ?? NaN);
  if (!Number.isSafeInteger(size) || size < 0) throw new DdtError('REMOTE_PROTOCOL', `remote identity gave no valid size (${JSON.stringify(get('size'))})`);
  const identity: DeviceIdentity = { kind: kind === 'block' ? 'block' : 'file', size };
  const set = (k: keyof DeviceIdentity, v: string | undefined) => {
    if (v) (identity as unknown as Record<string, string>)[k] = v;
  };
  if (kind === 'file') {
    set('ino', get('ino'));
    set('dev', get('dev'));
    const frac = (get('mtime_frac') ?? '').padEnd(3, '0').slice(0, 3);
    identity.mtimeMs = Number(get('mtime') ?? 0) * 1000 + Number(/^\d{3}$/.test(frac) ? frac : 0);
  } else if (kind === 'block') {
    set('devno', get('devno'));
    set('serial', get('serial'));
    set('wwid', get('wwid'));
  }
  return { kind, size, readable: get('readable') === '1', identity };
}

/** The answer of `identity PATH`. */
export function parseIdentity(text: string): RemotePathInfo {
  return parsePathInfo(keyValues(text));
}

export function parseProbe(text: string): RemoteProbe {
  const kv = keyValues(text);
  const num = (k: string): number => {
    const v = kv.get(k);
    const n = Number(v);
    if (v === undefined || v === '' || !Number.isSafeInteger(n) || n < 0) {
      throw new DdtError('REMOTE_PROTOCOL', `remote probe gave no valid ${k} (${JSON.stringify(v)})`);
    }
    return n;
  };
  const flag = (k: string): boolean => kv.get(k) === '1';
  const list = (k: string): string[] => (kv.get(k) ?? '').split(',').filter((w) => /^[a-z0-9_.-]+$/i.test(w));
  const type = kv.get('type');
  return {
    exists: flag('exists'),
    type: type === 'block' || type === 'file' ? type : 'other',
    size: num('size'),
    sector: num('sector') || 512,
    mounted: flag('mounted'),
    swap: flag('swap'),
    holders: (kv.get('holders') ?? '').split(/\s+/).filter(Boolean),
    writable: flag('writable'),
    free: num('free'),
    dir: kv.get('dir') ?? '',
    dirWritable: flag('dir_ok'),
    dirSize: Number(kv.get('dir_size')) || 0,
    xxhsum: flag('xxhsum'),
    sha256sum: flag('sha256sum'),
    openssl: flag('openssl'),
    seekBytes: flag('seek_bytes'),
    nocache: flag('nocache'),
    direct: flag('direct'),
    cores: Math.max(1, num('cores')),
    perl: flag('perl'),
    pid: num('pid'),
    hashTools: list('hash_tools'),
    missing: list('missing'),
    gzip: flag('gzip'),
    pathInfo: parsePathInfo(kv, 'id_'),
    zeroSparse: zeroHow(kv.get('zero_sparse')),
    zeroDiscard: zeroHow(kv.get('zero_discard')),
    arch: /^[a-z0-9_]+$/.test(kv.get('arch') ?? '') ? kv.get('arch')! : '',
    hostFacts: hostFacts(kv, list),
  };
}

/** `serve`'s HOSTINFO from the probe's answer (see host_facts in the helper). */
function hostFacts(kv: Map<string, string>, list: (k: string) => string[]): string | undefined {
  const stats = kv.get('dd_stats');
  const bit = (k: string) => (/^[01]$/.test(kv.get(k) ?? '') ? kv.get(k) : undefined);
  const [perl, nocache, punch, zeroout] = ['perl', 'nocache', 'punch', 'zeroout'].map(bit);
  if ((stats !== 'bytes' && stats !== 'records') || !perl || !nocache || !punch || !zeroout || !kv.has('hash_tools') || !kv.has('dd_conv')) return undefined;
  const tools = list('hash_tools').filter((t) => t === 'xxhsum' || t === 'openssl' || t === 'sha256sum');
  const conv = list('dd_conv').filter((c) => c === 'nocreat' || c === 'sparse');
  return `tools=${tools.join('+')},perl=${perl},conv=${conv.join('+')},stats=${stats},nocache=${nocache},punch=${punch},zeroout=${zeroout}`;
}

/** A helper that predates the key writes zeros. */
function zeroHow(v: string | undefined): ZeroHow {
  return ZERO_HOWS.find((h) => h === v) ?? 'write';
}
