// A valid job header for tests that write journals by hand: every field the reader checks,
// with the ones a test cares about given.
import { JOURNAL_VERSION, type JobHeader, type JobOptions } from '../../src/journal/records.js';

export const TEST_OPTIONS: JobOptions = {
  retries: 3,
  connections: 2,
  channels: 4,
  targetZeroed: false,
  skipIdentical: false,
  force: false,
  keepLogs: false,
  reconnectTimeoutMs: 600_000,
  noerror: false,
  compress: 'none',
  sparse: true,
};

export function testHeader(o: { source: string; target: string; size: number; blockSize: number; command?: JobHeader['command'] } & Partial<Omit<JobHeader, 'source' | 'target'>>): JobHeader {
  const { source, target, size, blockSize, ...rest } = o;
  return {
    type: 'job',
    version: JOURNAL_VERSION,
    jobId: '20261202T000000-test',
    command: 'copy',
    options: TEST_OPTIONS,
    path: { name: 'local' },
    source: { path: source, size, device: { kind: 'file', size } },
    target: { path: target, size },
    blockSize,
    blocks: Math.ceil(size / blockSize),
    checksum: 'xxh64',
    startedAt: new Date().toISOString(),
    ...rest,
  };
}
