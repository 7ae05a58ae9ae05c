/**
 * `ddt verify SOURCE [user@]host:TARGET`: the local source hashed here, the remote target hashed
 * by the helper there, block by block; never writes (the helper's `H` only reads).
 */
import { randomBytes } from 'node:crypto';
import { initChecksums } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { UsageError } from '../errors.js';
import { validateRemotePath } from '../remote/quote.js';
import { RemoteTargetWriter } from '../remote/remote-target.js';
import { BlockReader } from '../source/block-reader.js';
import { probeSource } from '../source/device.js';
import { resolveEndpoint, type EndpointOptions } from '../transport/endpoint.js';
import { parseRemoteSpec } from '../transport/target-spec.js';
import type { JobUi } from './local-job.js';
import { chooseChecksum, closeRemote, openRemote } from './remote-job.js';
import { verifyBlocks, type VerifyResult } from './verify.js';

export interface RemoteVerifyRequest extends EndpointOptions {
  source: string;
  /** `[user@]host:/path` */
  target: string;
  blockSize: number;
  checksum: ChecksumAlgo | 'auto';
  connections: number;
  channels: number;
  acceptNewHostKey: boolean;
  reconnectTimeoutMs: number;
}

export async function verifyRemote(req: RemoteVerifyRequest, ui: JobUi, onBlock?: (index: number, same: boolean, length: number) => void): Promise<VerifyResult> {
  const spec = parseRemoteSpec(req.target);
  validateRemotePath(spec.path, 'remote target');
  const source = await probeSource(req.source);
  const endpoint = await resolveEndpoint(spec, req);
  const jobId = `verify-${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}-${randomBytes(4).toString('hex')}`;
  const session = await openRemote(endpoint, { ...req, jobId, probe: { target: spec.path } }, ui);
  let reader: BlockReader | undefined;
  let target: RemoteTargetWriter | undefined;
  try {
    const where = `${endpoint.hosts[0]}:${spec.path}`;
    const probe = await session.helper.probe(spec.path, undefined, ui.signal);
    if (!probe.exists) throw new UsageError('TARGET_MISSING', `remote target ${where} does not exist: check the path`);
    if (probe.type === 'other') throw new UsageError('NOT_A_DEVICE', `remote target ${where} is neither a block device nor a regular file: give the path of a device or an image file`);
    if (probe.size < source.size) {
      throw new UsageError('TARGET_TOO_SMALL', `remote target ${where} (${probe.size} bytes) is smaller than the source (${source.size} bytes): they cannot be identical`);
    }
    const algo = chooseChecksum(req.checksum, probe);
    await initChecksums();
    reader = await BlockReader.open(source.path);
    target = await RemoteTargetWriter.open(session.helper, spec.path, { workers: req.connections * req.channels, signal: ui.signal });
    return await verifyBlocks(source.size, req.blockSize, algo, reader, target, target.workers, ui.signal, onBlock);
  } finally {
    await reader?.close();
    await target?.close().catch(() => {});
    await closeRemote(session, true);
  }
}
