/**
 * The journal's records, typed. The first line of every journal is the job header: enough to
 * continue the job with nothing else given. Then one line per block state change, and a `run`
 * record at the start and end of every run.
 */
import { randomBytes } from 'node:crypto';
import type { DeviceIdentity } from '../block/identity.js';
import type { ByteRange, ZeroMode } from '../block/types.js';
import type { ChecksumAlgo } from '../checksum/types.js';

export const JOURNAL_VERSION = 2;

export type JobCommand = 'copy' | 'send' | 'pull';

/** How block bytes travel: the data paths. */
export type PathName = 'local' | 'stream' | 'openssh' | 'sftp' | 'rsync';
export const PATH_NAMES: readonly PathName[] = ['local', 'stream', 'openssh', 'sftp', 'rsync'];

export type CompressMode = 'none' | 'gzip' | 'auto';

/** How to reach the remote end; resume reconnects with exactly this. */
export interface RemoteRecord {
  /** Several addresses of one host: the connections are spread over them. */
  hosts: string[];
  port: number;
  user: string;
  identityFiles: string[];
  /** `--known-hosts FILE`, which replaces the default files. */
  knownHosts?: string;
  /** UserKnownHostsFile of the ssh config (the global files stay). */
  userKnownHosts?: string[];
  /** IdentitiesOnly of the ssh config. */
  identitiesOnly?: boolean;
  /** ConnectTimeout and ServerAliveInterval of the ssh config. */
  connectTimeoutMs?: number;
  serverAliveIntervalMs?: number;
  /** `-J`/ProxyJump: the bastion chain, `[user@]host[:port]`, comma-separated, as given (resolved through the ssh config on every run). */
  jump?: string;
  /** ProxyCommand from the ssh config (tokens expanded). */
  proxyCommand?: string;
  /** `--ssh-config FILE`: where the jump hosts are resolved. */
  sshConfig?: string;
  /** The helper runs through `sudo -n`. */
  sudo?: boolean;
}

/** One end of a job: a device or an image file, here or on a remote host. */
export interface EndRecord {
  path: string;
  size: number;
  /** What identifies it between runs (resume and verify refuse another one). */
  device?: DeviceIdentity;
  /** Absent for a local end. */
  remote?: RemoteRecord;
}

/** Settings that shape the job; resume reuses them. */
export interface JobOptions {
  retries: number;
  connections: number;
  channels: number;
  targetZeroed: boolean;
  skipIdentical: boolean;
  force: boolean;
  keepLogs: boolean;
  reconnectTimeoutMs: number;
  noerror: boolean;
  compress: CompressMode;
  /** `--bwlimit` as typed (a rate or a schedule). */
  bwlimit?: string;
  /** Zero ranges of a file target become holes (false: `--no-sparse`, zeros are written). */
  sparse: boolean;
  /** `--fix-gpt`: once every block is proven, move a GPT's backup to the end of a larger target. */
  fixGpt?: boolean;
  /** `--discard`: a device may unmap zero ranges where unmapped blocks read as zeros. */
  discard?: boolean;
}

/** What the target does with zero ranges under these options. */
export function zeroModeOf(o: Pick<JobOptions, 'sparse' | 'discard'>): ZeroMode {
  if (!o.sparse) return 'write';
  return o.discard ? 'discard' : 'sparse';
}

/** The data path the job began with, and what that path needs to continue. */
export type PathRecord =
  | { name: 'local' }
  | { name: 'stream' }
  | { name: 'openssh' }
  | { name: 'sftp'; remoteDir?: string; remoteReserve?: string }
  | { name: 'rsync'; localDir?: string; remoteDir?: string; remoteReserve?: string };

export interface JobHeader {
  type: 'job';
  version: typeof JOURNAL_VERSION;
  jobId: string;
  command: JobCommand;
  options: JobOptions;
  path: PathRecord;
  source: EndRecord;
  target: EndRecord;
  blockSize: number;
  blocks: number;
  checksum: ChecksumAlgo;
  startedAt: string;
}

export type BlockState = 'read' | 'sent' | 'verified' | 'failed' | 'bad';
export const BLOCK_STATES: readonly BlockState[] = ['read', 'sent', 'verified', 'failed', 'bad'];

/** How a block was proven: written data, zero command, already identical, a zero already there. */
export type ProvenHow = 'data' | 'zero' | 'identical' | 'skipped-zero';
export const PROVEN_HOW: readonly ProvenHow[] = ['data', 'zero', 'identical', 'skipped-zero'];

export interface BlockRecord {
  type: 'block';
  block: number;
  state: BlockState;
  source?: string;
  target?: string;
  how?: ProvenHow;
  reason?: string;
  ranges?: ByteRange[];
  /** `verified`: bytes of the block the target made holes (or left as the zeros it had) … */
  holes?: number;
  /** … and bytes the device zeroed by offload: neither was written. */
  offloaded?: number;
  /**
   * `verified` by a delta (`--skip-identical`): the bytes written, its differing units less their
   * holes and offload. Absent: the whole block less `holes` and `offloaded` was written.
   */
  written?: number;
  time?: string;
}

/** One line per run (first run and every resume), and the end of a run. */
export interface RunRecord {
  type: 'run';
  event: 'start' | 'end';
  time: string;
  /** Names the run in the target's last-writer record. */
  run?: string;
  pid?: number;
  exitCode?: number;
  error?: string;
  /** `end` of a run: bytes sent on the wire during that run */
  bytesOnWire?: number;
}

export type JournalRecord = JobHeader | BlockRecord | RunRecord;

/** A job's id: its start time and a random suffix (also names its remote work dir). */
export function newJobId(now = new Date(), random = randomBytes(4).toString('hex')): string {
  return `${now.toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${random}`;
}

/** `[user@]host:path` or a local path, for messages and the summary. */
export function describeEnd(end: { path: string; remote?: Pick<RemoteRecord, 'hosts' | 'user'> }): string {
  if (!end.remote) return end.path;
  const h = end.remote.hosts[0] ?? '';
  return `${end.remote.user ? end.remote.user + '@' : ''}${h.includes(':') ? `[${h}]` : h}:${end.path}`;
}
