import type { CommandModule } from 'yargs';
import { runJob } from '../../engine/job.js';
import { DdtError } from '../../errors.js';
import { newJobOf, transferOptions } from '../options.js';
import { runTransfer } from '../run.js';

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
    if (argv.engine === 'rsync') throw new DdtError('BAD_OPTION', 'copy has only the native engine: leave out --engine rsync');
    return runTransfer(argv, (ui) => runJob(newJobOf('copy', argv), ui));
  },
};
