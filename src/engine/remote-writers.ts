import type { JobHeader } from '../journal/records.js';
import { RemoteTargetWriter } from '../remote/remote-target.js';
import { openSftpWriter } from './sftp-staging.js';
import { openRsyncWriter } from './rsync-writer.js';
import type { RemoteSession } from './remote-job.js';
import type { TargetHasher, TargetWriter } from './types.js';
import { CompressionPolicy, type CompressMode } from './compress.js';
import { parseBwLimit, TokenBucket } from '../transport/bwlimit.js';

/**
 * `--via` when not given and `openssh` cannot work (one connection, no local `ssh`; see
 * openssh-path.ts): sftp measured faster than stream on a 1 GiB mixed image over loopback
 * (`node --import tsx benchmarks/via.mjs 3 1024`). `send` falls back to `stream` when it was not
 * asked for sftp and staging is not possible there, or with `--compress gzip`.
 */
export const DEFAULT_VIA = 'sftp' as const;

/** A remote target writer for the job's data path, with how many blocks it takes at once. */
export type RemoteWriter = TargetWriter & TargetHasher & { readonly workers: number };

/** `--compress` and `--bwlimit` as recorded in the job: how block bytes are put on the link. */
export function linkShaping(header: JobHeader): { compress: CompressionPolicy; bucket?: TokenBucket } {
  const bw = header.options.bwlimit === undefined ? undefined : parseBwLimit(String(header.options.bwlimit));
  return { compress: new CompressionPolicy((header.options.compress as CompressMode | undefined) ?? 'none'), bucket: bw ? new TokenBucket(bw) : undefined };
}

/** The data path (`--via`) decides how block bytes reach the remote helper. */
export async function openRemoteWriter(
  header: JobHeader,
  session: RemoteSession,
  o: { channels: number; signal: AbortSignal; onWarning?: (message: string) => void },
): Promise<RemoteWriter> {
  // The rsync engine has its own data path (dd → block files → rsync → remote dd); --via is native's.
  if (header.engine === 'rsync') return openRsyncWriter(header, session.helper, session.rsync, { ...o, bucket: linkShaping(header).bucket });
  switch (header.via ?? 'stream') {
    case 'stream':
    case 'openssh': // the same helper requests; the helper's workers run over OpenSSH sessions
      // openssh leaves the ssh2 connection idle: its flusher lets blocks skip an fsync each.
      return RemoteTargetWriter.open(session.helper, header.target.path, {
        workers: o.channels,
        signal: o.signal,
        ...linkShaping(header),
        deferFlush: session.helper.openSshMasters.length > 0,
        sparse: session.helper.sparseWrites,
      });
    case 'sftp':
      // Staged files hold the block as it is: no --compress on this path, --bwlimit applies.
      return openSftpWriter(header, session.helper, { ...o, bucket: linkShaping(header).bucket });
    default:
      throw new Error(`unknown data path ${header.via}`);
  }
}
