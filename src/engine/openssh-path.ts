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

export interface MasterOptions {
  masters: number;
  jobId: string;
  reconnectTimeoutMs: number;
  onWarning?(msg: string): void;
}

/**
 * OpenSSH masters being started, all at once, possibly while the ssh2 connection is still being
 * set up (a new send starts them together: ≈ 0.2 s less before the first block). Either
 * `adopt` them (the helper's workers move onto them) or `discard` them (a refused or dry run).
 */
export class OpenSshStart {
  private readonly result: Promise<OpenSshMux[] | Error>;
  private adopted = false;

  constructor(endpoint: Endpoint, o: MasterOptions) {
    this.result = startMasters(endpoint, o).then(
      (muxes) => muxes,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
  }

  /** Move the helper's block workers onto the masters, `channels` sessions each; rejects with the start's error. */
  async adopt(helper: RemoteHelper, channels: number, onWarning?: (msg: string) => void): Promise<void> {
    const r = await this.result;
    if (r instanceof Error) throw r;
    this.adopted = true;
    helper.useOpenSsh(r, channels, onWarning);
  }

  /** Stop the masters unless adopted (then the helper's owner stops them). Idempotent. */
  async discard(): Promise<void> {
    if (this.adopted) return;
    const r = await this.result;
    if (!(r instanceof Error)) await Promise.all(r.map((m) => m.stop()));
  }
}

async function startMasters(endpoint: Endpoint, o: MasterOptions): Promise<OpenSshMux[]> {
  const started = await Promise.allSettled(
    Array.from({ length: o.masters }, (_, i) => {
      // Multipath (`host a,b`): the ssh2 connection takes the first address, masters the next ones.
      const hosts = endpoint.hosts.map((_h, k) => endpoint.hosts[(i + 1 + k) % endpoint.hosts.length]!);
      return OpenSshMux.start({ ...endpoint, hosts }, { reconnectTimeoutMs: o.reconnectTimeoutMs, jobId: o.jobId, onWarning: o.onWarning, purpose: 'the blocks' });
    }),
  );
  const up = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(up.map((m) => m.stop()));
    throw failed.reason;
  }
  return up;
}

/** Stop the masters (idempotent; nothing to do on the ssh2 paths). */
export async function stopOpenSshPath(helper: RemoteHelper): Promise<void> {
  await Promise.all(helper.openSshMasters.map((m) => m.stop().catch(() => undefined)));
}
