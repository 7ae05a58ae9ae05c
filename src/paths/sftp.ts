/**
 * `--via sftp`: each block is uploaded through long-lived SFTP sessions (many positioned writes
 * in flight; runs of zeros stay holes) into a staging file in a per-job directory inside
 * `--remote-dir` [remote $HOME], then the helper `dd`s it onto the target at its offset and
 * deletes it, while further blocks are still arriving. Free space there is checked continuously.
 */
import { isDdtError, DdtError } from '../errors.js';
import { RemoteTarget, zeroOptions } from '../remote/remote-target.js';
import { removeStagingDir, SftpStagingSink, stagingDirOf } from '../remote/sftp-target.js';
import { planStaging } from '../remote/staging-space.js';
import { notForThis, type DataPath, type PathContext, type PathQuery, type PreparedPath } from './types.js';

function staging(q: PathQuery) {
  return planStaging(q.probe!, q.remoteDir ?? 'the remote home directory', q.remoteReserve, q.blockLength);
}

export const sftpPath: DataPath = {
  name: 'sftp',
  refusals(q) {
    const why: string[] = [];
    if (q.command !== 'send') why.push('--via sftp uploads blocks into staging files: it can only send');
    if (q.compress === 'gzip') why.push('staged blocks are not compressed (--compress gzip)');
    const channels = q.connections * q.channels;
    if (channels < 2) why.push(`--via sftp needs at least 2 channels (an SFTP session and a helper worker), this run has ${channels}: raise --channels or use --via stream`);
    if (q.probe && why.length === 0) {
      try {
        staging(q);
      } catch (err) {
        why.push((err as Error).message);
      }
    }
    return why;
  },
  poolConnections: (connections) => connections,
  async prepare(ctx: PathContext): Promise<PreparedPath> {
    const s = ctx.session!;
    const plan = staging(ctx.query);
    const stagingDir = stagingDirOf(plan.dir, ctx.jobId);
    const cap = Math.min(ctx.query.connections * ctx.query.channels, s.pool.capacity());
    return {
      name: 'sftp',
      // As given: a default (the remote $HOME) is resolved again by every run.
      record: { name: 'sftp', ...(ctx.query.remoteDir !== undefined && { remoteDir: ctx.query.remoteDir }), ...(ctx.query.remoteReserve !== undefined && { remoteReserve: ctx.query.remoteReserve }) },
      describe: [`via sftp: staging in ${stagingDir} (${plan.free} bytes available, ${plan.reserve} kept free)`],
      takesParts: false,
      sinkLeavesState: true,
      openSink() {
        // Uploads and remote writes need a channel each at least; the writers follow the remote
        // cores, the SFTP sessions get the rest.
        const workers = Math.max(1, Math.min(s.probe.cores, cap - 1, Math.floor(cap / 2)));
        const openWriters = () =>
          RemoteTarget.open(s.helper, s.path, s.pool, { workers, signal: ctx.signal, ...zeroOptions(s.probe, ctx.query.zeros) }).catch((err: unknown) => {
            if (!isDdtError(err, 'SSH_NO_CHANNEL')) throw err;
            throw new DdtError('PATH_REFUSED', `--via sftp needs 2 channels (an SFTP session and a helper worker), the server allows only 1: use --via stream`, { cause: err });
          });
        return SftpStagingSink.open(s.pool, openWriters, {
          stagingDir,
          sessions: cap,
          reserve: plan.reserve,
          blockLength: ctx.query.blockLength,
          probedFree: plan.free,
          signal: ctx.signal,
          onWarning: ctx.warn,
        });
      },
      openSource: notForThis('sftp'),
      close: async (ok) => {
        if (ok) await removeStagingDir(s.pool, stagingDir, ctx.signal);
      },
    };
  },
};
