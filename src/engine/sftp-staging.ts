/**
 * `--via sftp` as a job sees it: where the staging directory is, the refusals before anything is
 * written (remote dir unusable, not even one block fits), opening the writer with the recorded
 * settings, and removing the staging directory after a fully verified run.
 */
import { UsageError } from '../errors.js';
import type { JobHeader } from '../journal/records.js';
import type { RemoteHelper } from '../remote/helper.js';
import type { RemoteProbe } from '../remote/probe.js';
import { shCommand } from '../remote/quote.js';
import { runRemote } from '../remote/run.js';
import { SftpStagingWriter, stagingDirOf, stagingSpaceMessage } from '../remote/sftp-target.js';
import { resolveReserve, StagingSpace } from '../remote/staging-space.js';
import type { TokenBucket } from '../transport/bwlimit.js';

export interface StagingPlan {
  /** `--remote-dir`, absolute and resolved on the remote host. */
  remoteDir: string;
  stagingDir: string;
  /** Bytes left free on the staging filesystem. */
  reserve: number;
  /** Available bytes the probe saw in `remoteDir`. */
  free: number;
}

/**
 * Check the remote dir from a probe of it (`helper.probe(target, remoteDir)`): it must exist and
 * be writable, and its filesystem must hold at least one block plus the reserve. `channels`:
 * connections × channels, of which uploads and remote writes need one each at least.
 */
export function planStaging(probe: RemoteProbe, wanted: string | undefined, reserveSpec: string | undefined, blockLength: number, jobId: string, channels: number): StagingPlan {
  if (channels < 2) {
    throw new UsageError('SFTP_CHANNELS', `--via sftp needs at least 2 channels (an SFTP session and a helper worker), this run has ${channels}: raise --channels or use --via stream`);
  }
  const shown = wanted ?? 'the remote home directory';
  if (!probe.dir || !probe.dirWritable) {
    throw new UsageError('REMOTE_DIR', `--remote-dir ${shown} ${probe.dir ? 'is not writable by the remote user' : 'does not exist on the remote host'}: create it, choose another, or use --via stream`);
  }
  const reserve = resolveReserve(reserveSpec, probe.dirSize ?? 0);
  const stagingDir = stagingDirOf(probe.dir, jobId);
  const space = new StagingSpace({ reserve });
  space.onMeasured(space.snapshot(), probe.free);
  if (space.free - space.reserve < space.need(blockLength)) throw new UsageError('STAGING_SPACE', stagingSpaceMessage(probe.dir, space, blockLength));
  return { remoteDir: probe.dir, stagingDir, reserve, free: probe.free };
}

/** The blocks of a job are at most this long. */
export function largestBlock(header: JobHeader): number {
  return Math.min(header.blockSize, header.source.size) || header.blockSize;
}

/** Open the `--via sftp` writer for a job (new or resumed) with the settings its header records. */
export async function openSftpWriter(
  header: JobHeader,
  helper: RemoteHelper,
  o: { channels: number; signal: AbortSignal; bucket?: TokenBucket; onWarning?: (message: string) => void },
): Promise<SftpStagingWriter> {
  const wanted = header.options.remoteDir === undefined ? undefined : String(header.options.remoteDir);
  const reserveSpec = header.options.remoteReserve === undefined ? undefined : String(header.options.remoteReserve);
  const probe = await helper.probe(header.target.path, wanted, o.signal);
  const plan = planStaging(probe, wanted, reserveSpec, largestBlock(header), String(header.options.jobId), o.channels);
  return SftpStagingWriter.open(helper, {
    target: header.target.path,
    stagingDir: plan.stagingDir,
    channels: o.channels,
    cores: probe.cores,
    reserve: plan.reserve,
    blockLength: largestBlock(header),
    probedFree: plan.free,
    bucket: o.bucket,
    signal: o.signal,
    onWarning: o.onWarning,
  });
}

// $1: --remote-dir ('' = $HOME, as the probe resolves it), $2: job id. Removes the block files
// ddt put in the job's staging dir, then the dir (only if nothing else is in it).
const REMOVE_STAGING = 'd=${1:-${HOME:-/}}/.ddt-staging-$2; [ -d "$d" ] || exit 0; rm -f -- "$d"/block-*; rmdir -- "$d"';

/**
 * After a fully verified run of a job that staged blocks (`--via sftp` now or in an earlier
 * run): remove its staging directory. Best effort: it only holds data ddt wrote.
 */
export async function removeStaging(header: JobHeader, helper: RemoteHelper, signal?: AbortSignal): Promise<void> {
  const remoteDir = header.options.remoteDir === undefined ? '' : String(header.options.remoteDir);
  await runRemote(helper.pool, shCommand('sh', '-c', REMOVE_STAGING, 'ddt-staging', remoteDir, helper.jobId), { signal }).catch(() => undefined);
}
