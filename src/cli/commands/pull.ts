import type { CommandModule } from 'yargs';
import { runPull } from '../../engine/pull-job.js';
import { UsageError } from '../../errors.js';
import { commonRequestOf, transferOptions } from '../options.js';
import { sshOptions, sshRequestOf } from '../ssh-options.js';
import { runTransfer } from '../run.js';

/** Send-side features pull does not have yet: refused before connecting rather than ignored. */
function refuseUnsupported(argv: { [key: string]: unknown }): void {
  if (argv.noerror) {
    throw new UsageError(
      'UNSUPPORTED',
      '--noerror is not supported by pull yet: without it a remote read error stops the run (exit 4, resumable); to rescue a failing disk, image it on its host first (e.g. ddrescue) and pull the image',
    );
  }
  if (argv.engine === 'rsync') throw new UsageError('UNSUPPORTED', 'pull has only the native engine: leave out --engine rsync');
  if (argv.compress === 'gzip') throw new UsageError('UNSUPPORTED', 'pull does not compress yet: leave out --compress gzip (blocks travel uncompressed; zero blocks never travel)');
  if (argv.bwlimit !== undefined) throw new UsageError('UNSUPPORTED', 'pull has no --bwlimit yet: leave it out, or limit the link elsewhere (e.g. tc on the source host)');
}

export const pullCommand: CommandModule = {
  command: 'pull <source> <target>',
  describe: 'fetch [user@]host:/dev/... or an image over SSH into a local device or file, every block read back and verified',
  builder: (y) =>
    sshOptions(transferOptions(y))
      .positional('source', { type: 'string', describe: '[user@]host:/path — a block device or image file on the remote host' })
      .positional('target', { type: 'string', describe: 'local block device or file (created at the source size if missing)' })
      .option('via', { choices: ['stream'] as const, default: 'stream' as const, describe: "data path: blocks read by the remote helper's dd, streamed over exec channels" })
      .example('$0 pull root@10.0.0.5:/dev/vdb /dev/sdc', 'bring a cloud disk home onto a local disk (asks before writing)')
      .example('$0 pull backup:/srv/images/vm.img vm.img --json', 'host alias from ~/.ssh/config into a new file, JSON summary')
      .example('$0 pull root@[2001:db8::5]:/dev/vg0/data /dev/loop3 -p 2222 -i ~/.ssh/migrate --yes', 'IPv6, port and key, no question'),
  handler: (argv) =>
    runTransfer(argv, (ui) => {
      refuseUnsupported(argv);
      return runPull(
        {
          ...commonRequestOf(argv),
          ...sshRequestOf(argv),
        },
        ui,
      );
    }),
};
