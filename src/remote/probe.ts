import { DdtError } from '../errors.js';
/** The `probe` answer of ddt-helper.sh, typed. One round trip tells everything setup needs. */

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
  /** `uname -m`: which build of the streaming hasher can run there ('' unknown). */
  arch?: string;
}

export function parseProbe(text: string): RemoteProbe {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
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
    arch: /^[a-z0-9_]+$/.test(kv.get('arch') ?? '') ? kv.get('arch')! : '',
  };
}
