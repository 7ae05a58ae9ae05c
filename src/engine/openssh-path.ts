/**
 * `--via openssh`: the stream data path (framed blocks into the remote helper's dd) carried by
 * sessions of the local OpenSSH client, multiplexed over ControlMaster connections, instead of
 * ssh2 channels. Same helper, same protocol, same journal: either path resumes the other's run.
 *
 * Why: on loopback ssh2 spent ≈ 3 CPU-s per GiB in JavaScript (packet framing, per-packet
 * padding randomness, buffer churn) on the event loop; the OpenSSH master encrypts in C and
 * takes block bytes from a pipe, so the send rate rose from ≈ 380 to ≈ 490 MB/s with fewer
 * channels (benchmarks/RESULTS.md).
 *
 * Connections: the ssh2 pool keeps one (helper install, probe, housekeeping, `--skip-identical`
 * hashing through the same workers), the other `--connections − 1` are masters, each carrying
 * `--channels` sessions. So `--connections` still bounds the TCP connections of the run.
 */
import { UsageError } from '../errors.js';
import type { RemoteHelper } from '../remote/helper.js';
import type { Endpoint } from '../transport/endpoint.js';
import { findOnPath } from '../transport/local-process.js';
import { OpenSshMux } from '../transport/openssh-mux.js';

export type Via = 'stream' | 'sftp' | 'openssh';

/**
 * Does this run carry blocks over OpenSSH? Asked for: yes, or a usage error when it cannot
 * (exit 2). Not asked for (`via` undefined): the default wherever it can work — the native
 * engine, 2 connections or more, `ssh` on PATH.
 */
export function useOpenSsh(via: Via | undefined, engine: string, connections: number, ssh = findOnPath('ssh')): boolean {
  if (via === 'openssh') {
    if (engine !== 'native') throw new UsageError('ENGINE_VIA', '--via openssh is a data path of the native engine; --engine rsync sends blocks with rsync: drop one of them');
    if (connections < 2) {
      throw new UsageError('OPENSSH_CONNECTIONS', '--via openssh needs --connections 2 or more: one connection keeps the control channel, the others carry the blocks');
    }
    if (!ssh) throw new UsageError('NO_SSH', 'OpenSSH client (ssh) not found on PATH: install the openssh-client package, or use --via stream');
    return true;
  }
  return via === undefined && engine === 'native' && connections >= 2 && ssh !== undefined;
}

/** Start `masters` OpenSSH connections and move the helper's block workers onto them. */
export async function startOpenSshPath(
  helper: RemoteHelper,
  endpoint: Endpoint,
  o: { masters: number; channels: number; jobId: string; reconnectTimeoutMs: number; onWarning?(msg: string): void },
): Promise<void> {
  const started: OpenSshMux[] = [];
  try {
    for (let i = 0; i < o.masters; i++) {
      // Multipath (`host a,b`): the ssh2 connection took the first address, masters the next ones.
      const hosts = endpoint.hosts.map((_, k) => endpoint.hosts[(i + 1 + k) % endpoint.hosts.length]!);
      started.push(await OpenSshMux.start({ ...endpoint, hosts }, { reconnectTimeoutMs: o.reconnectTimeoutMs, jobId: o.jobId, onWarning: o.onWarning, purpose: 'the blocks' }));
    }
  } catch (err) {
    await Promise.all(started.map((m) => m.stop()));
    throw err;
  }
  // OpenSSH's MaxSessions (10 by default) counts the master's own session too.
  helper.useOpenSsh(started, o.channels, o.onWarning);
}

/** Stop the masters (idempotent; nothing to do on the ssh2 paths). */
export async function stopOpenSshPath(helper: RemoteHelper): Promise<void> {
  await Promise.all(helper.openSshMasters.map((m) => m.stop().catch(() => undefined)));
}
