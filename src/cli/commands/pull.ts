import type { CommandModule } from 'yargs';
import { runJob } from '../../engine/job.js';
import { DdtError } from '../../errors.js';
import { newJobOf, sshOptions, transferOptions } from '../options.js';
import { runTransfer } from '../run.js';

/** Send-side features pull does not have: refused before connecting rather than ignored. */
function refuseUnsupported(argv: { [key: string]: unknown }): void {
  if (argv.noerror) {
    throw new DdtError(
      'BAD_OPTION',
      '--noerror is not supported by pull yet: without it a remote read error stops the run (exit 4, resumable); to rescue a failing disk, image it on its host first (e.g. ddrescue) and pull the image',
    );
  }
  if (argv.engine === 'rsync') throw new DdtError('BAD_OPTION', 'pull has only the native engine: leave out --engine rsync');
  if (argv.compress === 'gzip') throw new DdtError('BAD_OPTION', 'pull does not compress yet: leave out --compress gzip (blocks travel uncompressed; zero blocks never travel)');
  if (argv.bwlimit !== undefined) throw new DdtError('BAD_OPTION', 'pull has no --bwlimit yet: leave it out, or limit the link elsewhere (e.g. tc on the source host)');
}

export const pullCommand: CommandModule = {
  command: 'pull <source> <target>',
  describe: 'fetch [user@]host:/dev/... or an image over SSH into a local device or file, every block read back and verified',
  builder: (y) =>
    sshOptions(transferOptions(y))
      .positional('source', { type: 'string', describe: '[user@]host:/path — a block device or image file on the remote host' })
      .positional('target', { type: 'string', describe: 'local block device or file (created at the source size if missing)' })
      .option('via', { choices: ['openssh', 'stream'] as const, describe: "data path: blocks read by the remote helper's dd, over sessions of the local ssh client ('openssh') or ssh2 exec channels ('stream') [openssh where it can work]" })
      .example('$0 pull root@10.0.0.5:/dev/vdb /dev/sdc', 'bring a cloud disk home onto a local disk (asks before writing)')
      .example('$0 pull backup:/srv/images/vm.img vm.img --json', 'host alias from ~/.ssh/config into a new file, JSON summary')
      .example('$0 pull root@[2001:db8::5]:/dev/vg0/data /dev/loop3 -p 2222 -i ~/.ssh/migrate --yes', 'IPv6, port and key, no question'),
  handler: (argv) =>
    runTransfer(argv, (ui) => {
      refuseUnsupported(argv);
      return runJob({ ...newJobOf('pull', argv), via: argv.via as 'openssh' | 'stream' | undefined }, ui);
    }),
};
