import type { CommandModule } from 'yargs';
import { initChecksums } from '../../checksum/hasher.js';
import type { ChecksumAlgo } from '../../checksum/types.js';
import { LocalTarget } from '../../engine/local-target.js';
import { verifyBlocks } from '../../engine/verify.js';
import { ExitCode, UsageError } from '../../errors.js';
import { BlockReader } from '../../source/block-reader.js';
import { probeDevice, probeSource } from '../../source/device.js';
import { blockSizeOf, positiveInt } from '../options.js';
import { printJson } from '../output.js';
import { RunUi } from '../ui.js';

export const verifyCommand: CommandModule = {
  command: 'verify <source> <target>',
  describe: 'compare block checksums of source and target and list the differing byte ranges (never writes)',
  builder: (y) =>
    y
      .positional('source', { type: 'string' })
      .positional('target', { type: 'string' })
      .option('block-size', { alias: 'b', type: 'string', default: '64M', describe: 'comparison unit' })
      .option('checksum', { choices: ['xxh64', 'sha256', 'auto'] as const, default: 'auto' as const })
      .option('channels', { type: 'number', default: 4, describe: 'blocks hashed in parallel' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
      .example('$0 verify disk.img /dev/loop3', 'exit 0 when identical, 4 when not'),
  handler: async (argv) => {
    const blockSize = blockSizeOf(argv['block-size']);
    const algo: ChecksumAlgo = argv.checksum === 'sha256' ? 'sha256' : 'xxh64';
    const source = await probeSource(String(argv.source));
    const targetPath = String(argv.target);
    const target = await probeDevice(targetPath);
    if (!target) throw new UsageError('TARGET_MISSING', `target ${targetPath} does not exist: check the path`);
    if (target.size < source.size) {
      throw new UsageError('TARGET_TOO_SMALL', `target ${targetPath} (${target.size} bytes) is smaller than the source (${source.size} bytes): they cannot be identical`);
    }
    await initChecksums();
    const ui = new RunUi('none');
    const reader = await BlockReader.open(source.path);
    const hasher = await LocalTarget.open(targetPath, { readOnly: true });
    try {
      const r = await verifyBlocks(source.size, blockSize, algo, reader, hasher, positiveInt(argv.channels, '--channels', 64), ui.signal);
      if (argv.json) printJson(r);
      else {
        const lines = r.differences.map((d) => `${d.offset}..${d.offset + d.length} (${d.length} bytes)`);
        lines.push(`${r.identical}/${r.blocks} blocks identical${r.different ? `, ${r.different} differ` : ''} (${r.checksum})`);
        process.stdout.write(lines.join('\n') + '\n');
      }
      process.exitCode = r.different ? ExitCode.incomplete : ExitCode.ok;
    } finally {
      ui.finish();
      await reader.close();
      await hasher.close();
    }
  },
};
