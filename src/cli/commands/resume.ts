import type { CommandModule } from 'yargs';
import { allProven, readJournal, resumeCopy } from '../../engine/local-job.js';
import { UsageError } from '../../errors.js';
import { journalStatus } from '../../journal/status.js';
import { describeEnd } from '../../engine/job.js';
import { positiveInt } from '../options.js';
import { printJson, printSummary } from '../output.js';
import { RunUi, type ProgressMode } from '../ui.js';

export const resumeCommand: CommandModule = {
  command: 'resume <journal>',
  aliases: [],
  describe: 'continue an interrupted run with the settings its journal recorded',
  builder: (y) =>
    y
      .positional('journal', { type: 'string' })
      .option('channels', { type: 'number', describe: 'override: channels per connection (blocks in flight for copy)' })
      .option('progress', { choices: ['auto', 'tty', 'plain', 'json', 'none'] as const, default: 'auto' as const })
      .option('json', { type: 'boolean', default: false, describe: 'final summary as one JSON object on stdout' })
      .example('$0 resume ddt-20261128T101500Z.journal', 'continue at the first unproven block'),
  handler: async (argv) => {
    const path = String(argv.journal);
    const state = readJournal(path);
    if (allProven(state)) {
      const st = journalStatus(state, path, describeEnd);
      if (argv.json) printJson({ ok: true, exitCode: 0, nothingToDo: true, ...st });
      else process.stdout.write(`nothing to do: ${st.verified}/${st.blocks} blocks verified already (${path})\n`);
      return;
    }
    if (state.header.command !== 'copy') {
      throw new UsageError('RESUME_UNSUPPORTED', `this ddt cannot resume a '${state.header.command}' journal yet: upgrade ddt`);
    }
    const ui = new RunUi(argv.progress as ProgressMode);
    try {
      const channels = argv.channels === undefined ? undefined : positiveInt(argv.channels, '--channels', 64);
      const outcome = await resumeCopy(state, path, { concurrency: channels }, ui.jobUi(true));
      if (outcome.kind === 'done' || outcome.kind === 'nothing-to-do') {
        ui.finish(outcome.summary);
        printSummary(outcome.summary, Boolean(argv.json));
        process.exitCode = outcome.summary.exitCode;
      }
    } finally {
      ui.finish();
    }
  },
};
