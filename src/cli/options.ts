import type { Argv } from 'yargs';
import { parseSize } from '../progress/format.js';
import { UsageError } from '../errors.js';
import type { ChecksumAlgo } from '../checksum/types.js';

/** Options every transfer command shares (DESIGN §2). Sizes are parsed by us, not yargs. */
export function transferOptions<T>(y: Argv<T>) {
  return y
    .option('block-size', { alias: 'b', type: 'string', default: '64M', describe: 'unit of checksum, journal and retransmission (multiple of 512; K/M/G/T)' })
    .option('connections', { type: 'number', default: 2, describe: 'SSH (TCP) connections for the data path' })
    .option('channels', { type: 'number', default: 4, describe: 'channels per connection (blocks in flight for copy)' })
    .option('checksum', { choices: ['xxh64', 'sha256', 'auto'] as const, default: 'auto' as const, describe: 'block checksum (auto: xxh64 where the target can, else sha256)' })
    .option('retries', { type: 'number', default: 3, describe: 're-sends of a block whose read-back checksum differs' })
    .option('target-zeroed', { type: 'boolean', default: false, describe: 'the target is known to be all zeros: do not write zero blocks (still verified)' })
    .option('journal', { type: 'string', describe: 'journal file [./ddt-<UTC time>.journal]' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan and checks, write nothing' })
    .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'overwrite the target without asking' })
    .option('force', { type: 'boolean', default: false, describe: 'write to a target that is mounted, swap or held by another device' })
    .option('skip-identical', { type: 'boolean', default: false, describe: "hash the target's blocks first and send only those that differ (repeat backups)" })
    .option('noerror', { type: 'boolean', default: false, describe: 'on unreadable source sectors: zero-fill them, record the ranges, finish with exit 5' })
    .option('engine', { choices: ['native', 'rsync'] as const, default: 'native' as const, describe: "'rsync': the classic path (block files → rsync over one OpenSSH connection → remote dd), same checksums and journal" })
    .option('progress', { choices: ['auto', 'tty', 'plain', 'json', 'none'] as const, default: 'auto' as const, describe: 'progress display on stderr' })
    .option('json', { type: 'boolean', default: false, describe: 'final summary as one JSON object on stdout' });
}

export function blockSizeOf(v: unknown): number {
  return parseSize(String(v), '--block-size');
}

export function positiveInt(v: unknown, name: string, max = 1024): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError('BAD_OPTION', `${name} must be an integer from 1 to ${max}, got "${String(v)}"`);
  return n;
}

export function retriesOf(v: unknown): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 100) throw new UsageError('BAD_OPTION', `--retries must be an integer from 0 to 100, got "${String(v)}"`);
  return n;
}

export function checksumOf(v: unknown): ChecksumAlgo | 'auto' {
  return v as ChecksumAlgo | 'auto';
}

/** What every transfer command reads from the options the same way (bad values: exit 2). */
export function commonRequestOf(argv: Record<string, unknown>) {
  return {
    source: String(argv.source),
    target: String(argv.target),
    blockSize: blockSizeOf(argv['block-size']),
    checksum: checksumOf(argv.checksum),
    retries: retriesOf(argv.retries),
    targetZeroed: Boolean(argv['target-zeroed']),
    force: Boolean(argv.force),
    yes: Boolean(argv.yes),
    dryRun: Boolean(argv['dry-run']),
    journal: argv.journal as string | undefined,
    skipIdentical: Boolean(argv['skip-identical']),
  };
}
