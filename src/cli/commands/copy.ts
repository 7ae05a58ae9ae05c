import type { CommandModule } from 'yargs';
import { runCopy } from '../../engine/local-job.js';
import { blockSizeOf, checksumOf, positiveInt, retriesOf, transferOptions } from '../options.js';
import { runTransfer } from '../run.js';
import { UsageError } from '../../errors.js';

export const copyCommand: CommandModule = {
  command: 'copy <source> <target>',
  describe: 'copy a device or image to a local device or file, verifying every block',
  builder: (y) =>
    transferOptions(y)
      .positional('source', { type: 'string', describe: 'block device or image file to read' })
      .positional('target', { type: 'string', describe: 'block device or file to write (created at the source size if missing)' })
      .example('$0 copy /dev/sdb /dev/sdc --yes', 'clone a disk, every block read back and checked')
      .example('$0 copy disk.img /dev/loop3 -b 16M --json', 'write an image to a loop device, JSON summary'),
  handler: (argv) => {
    // Both ends are local: there is no SSH for rsync to run over.
    if (argv.engine === 'rsync') throw new UsageError('UNSUPPORTED', 'copy has only the native engine: leave out --engine rsync');
    return runTransfer(argv, (ui) =>
      runCopy({
          source: String(argv.source),
          target: String(argv.target),
          blockSize: blockSizeOf(argv['block-size']),
          checksum: checksumOf(argv.checksum),
          retries: retriesOf(argv.retries),
          concurrency: positiveInt(argv.channels, '--channels', 64),
          targetZeroed: Boolean(argv['target-zeroed']),
          force: Boolean(argv.force),
          yes: Boolean(argv.yes),
          dryRun: Boolean(argv['dry-run']),
          journal: argv.journal as string | undefined,
          noerror: Boolean(argv.noerror),
          skipIdentical: Boolean(argv['skip-identical']),
        },
        ui,
      ),
    );
  },
};
