import type { JobHeader } from '../journal/records.js';
import { RemoteTargetWriter } from '../remote/remote-target.js';
import type { RemoteSession } from './remote-job.js';
import type { TargetHasher, TargetWriter } from './types.js';

/** A remote target writer for the job's data path, with how many blocks it takes at once. */
export type RemoteWriter = TargetWriter & TargetHasher & { readonly workers: number };

/** The data path (`--via`) decides how block bytes reach the remote helper. */
export async function openRemoteWriter(header: JobHeader, session: RemoteSession, o: { channels: number; signal: AbortSignal }): Promise<RemoteWriter> {
  switch (header.via ?? 'stream') {
    case 'stream':
      return RemoteTargetWriter.open(session.helper, header.target.path, { workers: o.channels, signal: o.signal });
    default:
      throw new Error(`unknown data path ${header.via}`);
  }
}
