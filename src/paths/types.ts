/**
 * A data path is how block bytes travel between the two ends of a job. Every path is one file
 * implementing this interface; `registry.ts` chooses one for a new run or a resume.
 */
import type { BlockSink, BlockSource, ZeroMode } from '../block/types.js';
import type { CompressMode, JobCommand, PathName, PathRecord } from '../journal/records.js';
import type { RemoteHelper } from '../remote/helper.js';
import type { RemoteProbe } from '../remote/probe.js';
import type { Endpoint } from '../transport/endpoint.js';
import type { SshPool } from '../transport/ssh-pool.js';

/** What the choice of a path depends on. `probe` is there once the remote host was probed. */
export interface PathQuery {
  command: JobCommand;
  connections: number;
  channels: number;
  compress: CompressMode;
  /**
   * `--skip-identical` on a send: a changed block goes as its changed units only, to the helper's
   * workers (on the sftp path too, beside its staged whole blocks), so paths whose channels are
   * all workers come first. Orders the automatic choice only: a path asked for, or a resume's
   * recorded one, is kept.
   */
  delta?: boolean;
  /** What the target does with zero ranges (`--no-sparse`, `--discard`). */
  zeros: ZeroMode;
  /** The local OpenSSH client and rsync, where there are. */
  ssh?: string;
  rsync?: string;
  probe?: RemoteProbe;
  /** The largest block (staging space is needed for one). */
  blockLength: number;
  /** `--remote-dir`, `--remote-reserve`, `--local-dir` as given, or as the job recorded them. */
  remoteDir?: string;
  remoteReserve?: string;
  localDir?: string;
}

/** The remote end of a run: the ssh2 connections and the installed helper. */
export interface RemoteSession {
  endpoint: Endpoint;
  pool: SshPool;
  helper: RemoteHelper;
  /** The remote device or file of the job (the target of a send, the source of a pull). */
  path: string;
  probe: RemoteProbe;
}

export interface PathContext {
  /** Absent for the local path. */
  session?: RemoteSession;
  query: PathQuery;
  jobId: string;
  reconnectTimeoutMs: number;
  signal: AbortSignal;
  warn(message: string): void;
  /** What `begin` started before the ssh2 connections were up. */
  early?: EarlyStart;
}

/** Work a path begins before the ssh2 connections are up (OpenSSH masters), adopted or discarded. */
export interface EarlyStart {
  discard(): Promise<void>;
}

/** A path set up for one run: nothing has been written yet. */
export interface PreparedPath {
  readonly name: PathName;
  /** What the journal records (resume continues with it). */
  readonly record: PathRecord;
  /** Lines for `--dry-run`. */
  readonly describe: string[];
  /** The sink takes compressed parts (`parts` payloads), not only whole blocks. */
  readonly takesParts: boolean;
  /** Opening the sink leaves something on the target host (a staging dir) that only a journal
   * can later name and remove: it must not be opened before the journal exists. */
  readonly sinkLeavesState?: boolean;
  /** The remote target of a send; `rttMs`: the link's round trip, where it was measured. */
  openSink(o?: { rttMs?: number }): Promise<BlockSink>;
  /** The remote source of a pull. */
  openSource(): Promise<BlockSource>;
  /** After the run; `ok`: every block proven, so staging can go. */
  close(ok: boolean): Promise<void>;
}

export interface DataPath {
  readonly name: PathName;
  /** Every reason this path cannot carry the run (empty: it can). Pure. */
  refusals(q: PathQuery): string[];
  /** The run's TCP connections the ssh2 pool gets; the rest are this path's own. */
  poolConnections(connections: number): number;
  /** Start what can start before the ssh2 connections are up. */
  begin?(endpoint: Endpoint, o: { connections: number; jobId: string; reconnectTimeoutMs: number; warn(m: string): void; signal?: AbortSignal }): EarlyStart;
  /** Remove what a killed run of this path left on this host (a resume, on whatever path). */
  sweep?(jobId: string, q: PathQuery): Promise<void>;
  /** Set up for this run before anything is written (exit 2 where it cannot work after all). */
  prepare(ctx: PathContext): Promise<PreparedPath>;
  /**
   * A path whose connections of its own can wait until a re-sync needs them (see deferredPath): the
   * blocks its sink will take at once. Its record must be its name alone.
   */
  sinkWorkers?(q: PathQuery): number;
}

/** A path that cannot do this part of a job (a source for sftp, say): refused before writing. */
export function notForThis(what: string): () => Promise<never> {
  return () => Promise.reject(new Error(`${what}: not a data path for this direction`));
}
