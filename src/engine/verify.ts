/**
 * `ddt verify SOURCE TARGET`: block checksums of both ends compared, the remote end hashed on
 * its host by the helper. Never writes (the helper's `H` only reads).
 */
import PQueue from 'p-queue';
import type { BlockHasher, BlockSource, ByteRange } from '../block/types.js';
import { initChecksums } from '../checksum/hasher.js';
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { newJobId } from '../journal/records.js';
import { BlockReader } from '../local/block-reader.js';
import { probeDevice, probeSource } from '../local/device.js';
import { LocalTarget } from '../local/local-target.js';
import { mergeRanges, planBlocks } from '../plan/block-plan.js';
import { validateRemotePath } from '../remote/quote.js';
import { RemoteTarget } from '../remote/remote-target.js';
import { resolveEndpoint } from '../transport/endpoint.js';
import { isRemoteSpec, parseRemoteSpec } from '../transport/target-spec.js';
import type { SshRequest } from './job-setup.js';
import { closeRemote, openRemote } from './remote-end.js';
import { checkRemoteTools, chooseChecksum } from '../remote/tools.js';
import { warn, type JobUi } from './ui.js';

export interface VerifyResult {
  blocks: number;
  identical: number;
  different: number;
  /** half-open byte ranges [offset, offset+length) where the target differs */
  differences: ByteRange[];
  checksum: ChecksumAlgo;
  bytesTotal: number;
}

export interface VerifyRequest {
  source: string;
  /** A local path, or `[user@]host:path` (hashed on that host). */
  target: string;
  blockSize: number;
  checksum: ChecksumAlgo | 'auto';
  connections: number;
  channels: number;
  ssh: SshRequest;
  reconnectTimeoutMs: number;
}

export async function runVerify(req: VerifyRequest, ui: JobUi, onBlock?: (index: number, same: boolean, length: number) => void): Promise<VerifyResult> {
  const source = await probeSource(req.source);
  planBlocks(source.size, req.blockSize);
  await initChecksums();
  const reader = await BlockReader.open(source.path);
  if (reader.cacheWarning) warn(ui, reader.cacheWarning);
  try {
    if (!isRemoteSpec(req.target)) {
      const target = await probeDevice(req.target);
      if (!target) throw new DdtError('TARGET_MISSING', `target ${req.target} does not exist: check the path`);
      refuseSmaller(req.target, target.size, source.size);
      const algo: ChecksumAlgo = req.checksum === 'sha256' ? 'sha256' : 'xxh64';
      const hasher = await LocalTarget.open(req.target, { readOnly: true });
      try {
        return await verifyBlocks(source.size, req.blockSize, algo, reader, hasher, req.channels, ui.signal, onBlock);
      } finally {
        await hasher.close();
      }
    }
    const spec = parseRemoteSpec(req.target);
    const path = validateRemotePath(spec.path, 'remote target');
    const endpoint = await resolveEndpoint(spec, req.ssh);
    const session = await openRemote(endpoint, { ...req, acceptNewHostKey: req.ssh.acceptNewHostKey, jobId: `verify-${newJobId()}`, path, sudo: req.ssh.sudo }, ui);
    let hasher: RemoteTarget | undefined;
    try {
      const where = `${endpoint.hosts[0]}:${path}`;
      const p = session.probe;
      if (!p.exists) throw new DdtError('TARGET_MISSING', `remote target ${where} does not exist: check the path`);
      if (p.type === 'other') throw new DdtError('TARGET_INVALID', `remote target ${where} is neither a block device nor a regular file: give the path of a device or an image file`);
      refuseSmaller(where, p.size, source.size);
      if (!p.pathInfo.readable) {
        throw new DdtError('TARGET_INVALID', `remote target ${where} is not readable by ${endpoint.user}: connect as a user who can read it (e.g. -l root), or pass --sudo`);
      }
      checkRemoteTools(p, endpoint.hosts[0]!);
      const algo = chooseChecksum(req.checksum, p, endpoint.hosts[0]!);
      hasher = await RemoteTarget.open(session.helper, path, session.pool, { workers: req.connections * req.channels, signal: ui.signal });
      return await verifyBlocks(source.size, req.blockSize, algo, reader, hasher, hasher.capacity, ui.signal, onBlock);
    } finally {
      await hasher?.close().catch(() => {});
      await closeRemote(session, true);
    }
  } finally {
    await reader.close();
  }
}

function refuseSmaller(where: string, size: number, sourceSize: number): void {
  if (size < sourceSize) throw new DdtError('TARGET_INVALID', `target ${where} (${size} bytes) is smaller than the source (${sourceSize} bytes): they cannot be identical`);
}

/** Compare block checksums of source and target; never writes. */
export async function verifyBlocks(
  size: number,
  blockSize: number,
  algo: ChecksumAlgo,
  reader: BlockSource,
  target: BlockHasher,
  concurrency: number,
  signal: AbortSignal,
  onBlock?: (index: number, same: boolean, length: number) => void,
): Promise<VerifyResult> {
  const blocks = planBlocks(size, blockSize);
  const diffs: ByteRange[] = [];
  const queue = new PQueue({ concurrency: Math.max(1, concurrency) });
  let identical = 0;
  for (const block of blocks) {
    await queue.onSizeLessThan(queue.concurrency);
    signal.throwIfAborted();
    void queue.add(async () => {
      const [src, tgt] = await Promise.all([reader.hashBlock(block, algo), target.hashAt(block, algo, signal)]);
      const same = src.checksum === tgt;
      if (same) identical++;
      else diffs.push({ offset: block.offset, length: block.length });
      onBlock?.(block.index, same, block.length);
    });
  }
  await queue.onIdle();
  signal.throwIfAborted();
  return { blocks: blocks.length, identical, different: blocks.length - identical, differences: mergeRanges(diffs), checksum: algo, bytesTotal: size };
}
