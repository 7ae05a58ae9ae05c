import type { CommandModule } from 'yargs';
import { runJob } from '../../engine/job.js';
import { askedPathOf, newJobOf, reserveOf, sshOptions, transferOptions } from '../options.js';
import { runTransfer } from '../run.js';

export const sendCommand: CommandModule = {
  command: 'send <source> <target>',
  describe: 'push a local device or image to [user@]host:/dev/... over SSH, every block verified on the target',
  builder: (y) =>
    sshOptions(transferOptions(y))
      .positional('source', { type: 'string', describe: 'local block device or image file' })
      .positional('target', { type: 'string', describe: '[user@]host:/path — a block device or file on the remote host' })
      .option('via', {
        choices: ['openssh', 'stream', 'sftp'] as const,
        describe:
          "data path: 'openssh' pipes blocks into dd over sessions of the local ssh client, multiplexed on --connections − 1 ControlMaster connections; 'stream' pipes them over ssh2 exec channels; 'sftp' uploads them into --remote-dir, then dd writes them at their offset [openssh with 2+ connections and ssh on PATH; else sftp (stream with --skip-identical: a changed block's changed units go to the helper's workers, and stream has more of them); stream where staging is not possible]",
      })
      .option('remote-dir', { alias: 'remote_transfer_dir', type: 'string', describe: '--via sftp: remote directory for staged blocks (a per-job dir inside) [remote $HOME]' })
      .option('remote-reserve', { type: 'string', describe: '--via sftp: space to keep free there, a size or N% [smaller of 1G and 10%]' })
      .option('local-dir', { type: 'string', describe: '--engine rsync: local directory for staged blocks (a private dir inside) [system temp dir]' })
      .example('$0 send /dev/sdb root@10.0.0.5:/dev/vdb', 'migrate a disk into a cloud VM (asks before writing)')
      .example('$0 send disk.img backup:/dev/vg0/disk --yes --json', 'host alias from ~/.ssh/config, JSON summary')
      .example('$0 send /dev/sda root@[2001:db8::5]:/dev/vdb -p 2222 -i ~/.ssh/migrate', 'IPv6, port and key')
      .example('$0 send /dev/sdb root@10.0.0.5:/dev/vdb -J admin@bastion.example.com', 'through a jump host (ProxyJump/ProxyCommand in ~/.ssh/config work too)'),
  handler: (argv) =>
    runTransfer(argv, (ui) =>
      runJob(
        {
          ...newJobOf('send', argv),
          via: askedPathOf(argv),
          remoteDir: argv['remote-dir'] as string | undefined,
          remoteReserve: reserveOf(argv['remote-reserve']),
          localDir: argv['local-dir'] as string | undefined,
        },
        ui,
      ),
    ),
};
