/**
 * The remote end of a job: connect (at most the run's share of `--connections`), install the
 * helper and probe the remote path in one round trip, the refusals before anything is written,
 * and the end of it all.
 */
import { DdtError } from '../errors.js';
import type { RemoteSession } from '../paths/types.js';
import { RemoteHelper } from '../remote/helper.js';
import { hasherOffer } from '../remote/native-hasher.js';
import type { RemoteProbe } from '../remote/probe.js';
import type { RemotePathInfo } from '../remote/remote-source.js';
import { knownHostsFilesOf, type Endpoint } from '../transport/endpoint.js';
import { SshPool } from '../transport/ssh-pool.js';
import { warn, type JobUi } from './ui.js';
import { trace } from '../trace.js';

export interface RemoteOptions {
  connections: number;
  channels: number;
  /**
   * Sessions the run keeps beside its blocks' on each connection (default 1: the target's lock,
   * for the whole run). A run that hashes the target ahead keeps its stream too, for most of it.
   */
  held?: number;
  acceptNewHostKey: boolean;
  reconnectTimeoutMs: number;
  jobId: string;
  /** The remote device or file of the job, probed with the helper's install. */
  path: string;
  /** A staging dir to probe too (free space, writable). */
  remoteDir?: string;
  sudo?: boolean;
  /** The run will want ddt-hash on the remote host from the start: a kept copy is tested with the probe. */
  hasher?: boolean;
  /** Connected: what may start beside the install and the probe (on a session of its own). */
  connected?(pool: SshPool): Promise<void>;
}

export async function openRemote(endpoint: Endpoint, o: RemoteOptions, ui: JobUi): Promise<RemoteSession> {
  const pool = await connectPool(endpoint, o, ui);
  const beside = o.connected?.(pool);
  try {
    const hasher = o.hasher ? await hasherOffer() : undefined;
    const helper = await RemoteHelper.install(pool, { jobId: o.jobId, sudo: o.sudo, signal: ui.signal, probe: { target: o.path, remoteDir: o.remoteDir }, hasher });
    await beside;
    const probe = await helper.probe(o.path, o.remoteDir, ui.signal);
    trace(`helper installed (script ${helper.scriptFrom}), probed`);
    return { endpoint, pool, helper, path: o.path, probe };
  } catch (err) {
    await beside?.catch(() => undefined);
    await pool.close();
    throw err;
  }
}

/** The ssh2 connections to `endpoint`, as every command that reaches a remote host makes them. */
export async function connectPool(endpoint: Endpoint, o: Pick<RemoteOptions, 'connections' | 'channels' | 'held' | 'acceptNewHostKey' | 'reconnectTimeoutMs'>, ui: JobUi): Promise<SshPool> {
  if (endpoint.unsupported?.length) {
    warn(ui, `the ssh config sets ${endpoint.unsupported.join(', ')}, which ddt does not carry out: ignored (ddt connects as if they were not there)`);
  }
  const pool = await SshPool.open({
    hosts: endpoint.hosts,
    port: endpoint.port,
    user: endpoint.user,
    identityFiles: endpoint.identityFiles,
    identitiesOnly: endpoint.identitiesOnly,
    hops: endpoint.hops,
    proxyCommand: endpoint.proxyCommand,
    readyTimeoutMs: endpoint.connectTimeoutMs,
    serverAliveIntervalMs: endpoint.serverAliveIntervalMs,
    agent: process.env.SSH_AUTH_SOCK || undefined,
    knownHostsFiles: knownHostsFilesOf(endpoint),
    acceptNewHostKey: o.acceptNewHostKey,
    connections: o.connections,
    // More than the blocks use: the target's lock holds a session for the whole run (see `held`).
    channelsPerConnection: o.channels + (o.held ?? 1),
    reconnectTimeoutMs: o.reconnectTimeoutMs,
    signal: ui.signal,
    onWarning: (m) => warn(ui, m),
  });
  trace('connected');
  return pool;
}

/**
 * The end of a run's remote side. A refused or dry run leaves nothing; an unfinished one keeps
 * the PID list for resume. `alongside`: what else ends while the work dir goes (it may still use
 * the connection); the connection closes after both.
 */
export async function closeRemote(s: RemoteSession, removeWorkDir: boolean, alongside?: () => Promise<void>): Promise<void> {
  const [, other] = await Promise.allSettled([removeWorkDir ? s.helper.cleanup().catch(() => {}) : undefined, alongside?.()]);
  await s.pool.close();
  if (other.status === 'rejected') throw other.reason;
}

/** Refusals on the remote target of a send: nothing is written before these pass. */
export function checkRemoteTarget(p: RemoteProbe, where: string, sourceSize: number, force: boolean): void {
  if (!p.exists) throw new DdtError('TARGET_MISSING', `remote target ${where} does not exist: create it or check the path`);
  if (p.type === 'other') throw new DdtError('TARGET_INVALID', `remote target ${where} is neither a block device nor a regular file`);
  if (p.size < sourceSize) {
    throw new DdtError('TARGET_INVALID', `remote target ${where} has ${p.size} bytes, smaller than the source's ${sourceSize}: use a target of at least that size`);
  }
  const users: string[] = [];
  if (p.mounted) users.push('it or one of its partitions is mounted');
  if (p.swap) users.push('it is in use as swap');
  if (p.holders.length) users.push(`it is held by ${p.holders.join(', ')}`);
  if (users.length && !force) throw new DdtError('TARGET_IN_USE', `remote target ${where} is in use (${users.join('; ')}): release it first, or pass --force`);
  if (!p.writable) throw new DdtError('TARGET_INVALID', `remote target ${where} is not writable by the remote user: connect as a user who may write it, or pass --sudo`);
}

/** Refusals on the remote source of a pull: nothing is written before these pass. */
export function checkRemoteSource(info: RemotePathInfo, probe: RemoteProbe, where: string, user: string): void {
  if (!probe.exists) throw new DdtError('SOURCE_MISSING', `remote source ${where} does not exist: check the path`);
  if (info.kind === 'other') throw new DdtError('SOURCE_INVALID', `remote source ${where} is neither a block device nor a regular file: give the path of a device or an image file`);
  if (!info.readable) throw new DdtError('SOURCE_INVALID', `remote source ${where} is not readable by ${user}: connect as a user who can read it (e.g. -l root), or pass --sudo`);
  if (info.size === 0) throw new DdtError('SOURCE_INVALID', `remote source ${where} is empty (0 bytes): nothing to copy`);
}
