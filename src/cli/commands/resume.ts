import type { CommandModule } from 'yargs';
import { runJob } from '../../engine/job.js';
import { DdtError } from '../../errors.js';
import { allProven, readJournal } from '../../journal/journal.js';
import type { PathName } from '../../journal/records.js';
import { journalStatus } from '../../journal/status.js';
import { bwlimitOf, channelsOf, connectionsOf, PROGRESS_CHOICES, reconnectTimeoutOf } from '../options.js';
import { printJson } from '../output.js';
import { runTransfer } from '../run.js';
import { clean } from '../terminal.js';

export const resumeCommand: CommandModule = {
  command: 'resume <journal>',
  describe: 'continue an interrupted run with the settings its journal recorded',
  builder: (y) =>
    y
      .positional('journal', { type: 'string', describe: 'journal file of the interrupted run' })
      .option('connections', { type: 'number', describe: 'override: SSH connections' })
      .option('channels', { type: 'number', describe: 'override: channels per connection (blocks in flight for copy)' })
      .option('identity', { alias: 'i', type: 'string', array: true, describe: 'override: private key file(s)' })
      .option('known-hosts', { type: 'string', describe: 'override: known_hosts file' })
      .option('ssh-config', { type: 'string', describe: 'override: ssh config file (jump hosts, proxies)' })
      .option('bwlimit', { type: 'string', describe: "override: bytes/s on the wire or a schedule like '08:00-18:00=2M,*=0' (0 = unlimited)" })
      .option('reconnect-timeout', { type: 'string', describe: 'override: give up (exit 4, resumable) when the host stays unreachable this long' })
      .option('via', { choices: ['openssh', 'stream', 'sftp'] as const, describe: 'override: data path of a send or pull' })
      .option('engine', { choices: ['native', 'rsync'] as const, describe: "override: engine of a send (either continues the other's journal)" })
      .option('reverify', { type: 'boolean', default: false, describe: 're-hash the blocks proven earlier before trusting them (resends those that differ)' })
      .option('yes', { alias: 'y', type: 'boolean', default: false, describe: 'accepted for scripts: the job was confirmed when it started' })
      .option('progress', { choices: PROGRESS_CHOICES, default: 'auto' as const })
      .option('json', { type: 'boolean', default: false, describe: 'final summary as one JSON object on stdout' })
      .example('$0 resume ddt-20261128T101500Z.journal', 'continue at the first unproven block')
      .example('$0 resume ddt-20261128T101500Z.journal --connections 4', 'the same job over more connections'),
  handler: async (argv) => {
    const path = String(argv.journal);
    const state = readJournal(path);
    const command = state.header.command;
    if (argv.bwlimit !== undefined && command !== 'send') throw new DdtError('BAD_OPTION', `--bwlimit applies to send journals; this is a '${command}' journal`);
    if (argv.engine !== undefined && command !== 'send') throw new DdtError('BAD_OPTION', `--engine applies to send journals; this is a '${command}' journal`);
    if (argv.via !== undefined && command === 'copy') throw new DdtError('BAD_OPTION', `--via applies to send and pull journals; this is a 'copy' journal`);
    if (allProven(state) && !argv.reverify) {
      const st = journalStatus(state, path);
      if (argv.json) printJson({ ok: true, exitCode: 0, nothingToDo: true, ...st });
      else process.stdout.write(`nothing to do: ${st.verified}/${st.blocks} blocks verified already (${clean(path)})\n`);
      return;
    }
    const via = argv.engine === 'rsync' ? 'rsync' : argv.engine === 'native' && argv.via === undefined && state.header.path.name === 'rsync' ? 'stream' : (argv.via as PathName | undefined);
    await runTransfer(argv, (ui) =>
      runJob(
        {
          kind: 'resume',
          journal: path,
          state,
          overrides: {
            connections: argv.connections === undefined ? undefined : connectionsOf(argv.connections),
            channels: argv.channels === undefined ? undefined : channelsOf(argv.channels),
            identity: argv.identity as string[] | undefined,
            knownHosts: argv['known-hosts'] as string | undefined,
            sshConfig: argv['ssh-config'] as string | undefined,
            bwlimit: bwlimitOf(argv.bwlimit),
            reconnectTimeoutMs: argv['reconnect-timeout'] === undefined ? undefined : reconnectTimeoutOf(argv['reconnect-timeout']),
            via,
            reverify: Boolean(argv.reverify),
          },
        },
        ui,
      ),
    );
  },
};
