import type { CommandModule } from 'yargs';
import { describeEnd } from '../../engine/job.js';
import { allProven, readJournal, resumeCopy } from '../../engine/local-job.js';
import { resumeSend } from '../../engine/remote-job.js';
import { engineOf } from '../../engine/rsync-session.js';
import { resumePull } from '../../engine/pull-job.js';
import { UsageError } from '../../errors.js';
import { journalStatus } from '../../journal/status.js';
import { positiveInt } from '../options.js';
import { bwlimitOf } from '../ssh-options.js';
import { printJson } from '../output.js';
import { runTransfer } from '../run.js';

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
      .option('bwlimit', { type: 'string', describe: "override: bytes/s on the wire or a schedule like '08:00-18:00=2M,*=0' (0 = unlimited)" })
      .option('via', { choices: ['openssh', 'stream', 'sftp'] as const, describe: 'override: data path of a send' })
      .option('engine', { choices: ['native', 'rsync'] as const, describe: 'override: engine of a send (either continues the other\'s journal)' })
      .option('progress', { choices: ['auto', 'tty', 'plain', 'json', 'none'] as const, default: 'auto' as const })
      .option('json', { type: 'boolean', default: false, describe: 'final summary as one JSON object on stdout' })
      .example('$0 resume ddt-20261128T101500Z.journal', 'continue at the first unproven block')
      .example('$0 resume ddt-20261128T101500Z.journal --connections 4', 'the same job over more connections'),
  handler: async (argv) => {
    const path = String(argv.journal);
    const state = readJournal(path);
    if (allProven(state)) {
      const st = journalStatus(state, path, describeEnd);
      if (argv.json) printJson({ ok: true, exitCode: 0, nothingToDo: true, ...st });
      else process.stdout.write(`nothing to do: ${st.verified}/${st.blocks} blocks verified already (${path})\n`);
      return;
    }
    const channels = argv.channels === undefined ? undefined : positiveInt(argv.channels, '--channels', 64);
    const connections = argv.connections === undefined ? undefined : positiveInt(argv.connections, '--connections', 64);
    const command = state.header.command;
    // The journal keeps the job as started; an override holds for this run only.
    if (argv.bwlimit !== undefined) {
      if (command !== 'send') throw new UsageError('BAD_OPTION', `--bwlimit applies to send journals; this is a '${command}' journal`);
      state.header.options.bwlimit = bwlimitOf(argv.bwlimit);
    }
    if (argv.engine !== undefined && command !== 'send') throw new UsageError('BAD_OPTION', `--engine applies to send journals; this is a '${command}' journal`);
    await runTransfer(argv, (ui) => {
      if (command === 'copy') return resumeCopy(state, path, { concurrency: channels }, ui);
      if (command === 'send') {
        return resumeSend(
          state,
          path,
          { connections, channels, identity: argv.identity as string[] | undefined, knownHosts: argv['known-hosts'] as string | undefined, via: argv.via as 'openssh' | 'stream' | 'sftp' | undefined, engine: argv.engine === undefined ? undefined : engineOf(argv.engine) },
          ui,
        );
      }
      if (command === 'pull') {
        return resumePull(state, path, { connections, channels, identity: argv.identity as string[] | undefined, knownHosts: argv['known-hosts'] as string | undefined }, ui);
      }
      throw new UsageError('RESUME_UNSUPPORTED', `this ddt cannot resume a '${command}' journal: upgrade ddt`);
    });
  },
};
