/**
 * `--engine rsync`: the classic path of the original dd-transfer script, kept for compatibility
 * and as the benchmark baseline: each block is cut into a local file, sent with rsync over one
 * OpenSSH ControlMaster connection, and written at its offset, read back and hashed by the same
 * remote helper as every path, so the journal is the same and either resumes the other.
 *
 * Connections: the ssh2 pool (the helper: probe, `F`/`Z`/`H` requests) gets `--connections` − 1,
 * the ControlMaster the last one, so the run never has more than `--connections`.
 */
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { removeStagingDir } from '../remote/sftp-target.js';
import { RemoteTarget, zeroOptions } from '../remote/remote-target.js';
import { stagingPrefix } from '../rsync/local-staging.js';
import { checkLocalRsync, RsyncSession } from '../rsync/rsync-session.js';
import { RsyncSink } from '../rsync/rsync-target.js';
import { removeLeftovers } from '../transport/local-process.js';
import { muxDirBase, muxDirPrefix } from '../transport/openssh-mux.js';
import { notForThis, type DataPath, type PathContext, type PreparedPath } from './types.js';

/**
 * Before a job continues (on any path): remove the local staging dir (staged blocks) and socket
 * dir that a killed rsync run of this job left. Its ControlMaster ends by itself.
 */
export async function removeRsyncLeftovers(jobId: string, localDir: string | undefined): Promise<void> {
  await removeLeftovers(resolve(localDir ?? tmpdir()), stagingPrefix(jobId));
  await removeLeftovers(muxDirBase(), muxDirPrefix(jobId));
}

export const rsyncPath: DataPath = {
  name: 'rsync',
  refusals(q) {
    const why: string[] = [];
    if (q.command !== 'send') why.push('the rsync engine can only send');
    if (q.connections < 2) why.push('--engine rsync needs --connections 2 or more: one OpenSSH connection carries rsync, the others the ddt helper that writes and checks the blocks');
    if (!q.rsync) why.push('rsync is not installed on this host: install the rsync package (Debian/Ubuntu: apt-get install rsync), or use --engine native');
    if (!q.ssh) why.push('the OpenSSH client (ssh) is not installed on this host: install the openssh-client package, or use --engine native');
    return why;
  },
  poolConnections: (connections) => connections - 1,
  sweep: (jobId, q) => removeRsyncLeftovers(jobId, q.localDir),
  async prepare(ctx: PathContext): Promise<PreparedPath> {
    const s = ctx.session!;
    const local = await checkLocalRsync();
    const { localDir, remoteDir, remoteReserve } = ctx.query;
    const session = await RsyncSession.open(local, s.helper, s.endpoint, {
      target: s.path,
      largestBlock: ctx.query.blockLength,
      localDir,
      remoteDir,
      remoteReserve,
      compress: ctx.query.compress,
      channels: ctx.query.channels,
      jobId: ctx.jobId,
      reconnectTimeoutMs: ctx.reconnectTimeoutMs,
      signal: ctx.signal,
      onWarning: ctx.warn,
    });
    return {
      name: 'rsync',
      record: { name: 'rsync', ...(localDir !== undefined && { localDir }), ...(remoteDir !== undefined && { remoteDir }), ...(remoteReserve !== undefined && { remoteReserve }) },
      describe: [session.describe()],
      takesParts: false,
      async openSink() {
        await session.ensureRemoteDir(ctx.signal);
        const writers = await RemoteTarget.open(s.helper, s.path, s.pool, { workers: ctx.query.channels, signal: ctx.signal, ...zeroOptions(s.probe, ctx.query.zeros) });
        return new RsyncSink(writers, session);
      },
      openSource: notForThis('rsync'),
      async close(ok) {
        await session.close().catch(() => undefined);
        if (ok && remoteDir !== undefined) await removeStagingDir(s.pool, session.remoteDir, ctx.signal);
      },
    };
  },
};
