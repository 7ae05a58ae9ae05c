import type { CommandModule } from 'yargs';
import { runCopy } from '../../engine/local-job.js';
import { commonRequestOf, positiveInt, transferOptions } from '../options.js';
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
          ...commonRequestOf(argv),
          concurrency: positiveInt(argv.channels, '--channels', 64),
          noerror: Boolean(argv.noerror),
        },
        ui,
      ),
    );
  },
};
