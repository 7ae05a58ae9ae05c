#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { exitCodeOf, messageOf, ExitCode } from '../errors.js';
import { copyCommand } from './commands/copy.js';
import { sendCommand } from './commands/send.js';
import { resumeCommand } from './commands/resume.js';
import { statusCommand } from './commands/status.js';
import { verifyCommand } from './commands/verify.js';

/** The only place that maps errors to exit codes and touches process.exit. */
async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('ddt')
    .usage('ddt <command>: move a whole block device or disk image, verified block by block, resumable')
    .command(sendCommand)
    .command(copyCommand)
    .command(verifyCommand)
    .command(statusCommand)
    .command(resumeCommand)
    .demandCommand(1, 'give a command: ddt --help lists them')
    .strict()
    .recommendCommands()
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`ddt: error: ${msg}: see ddt --help\n`);
      process.exit(ExitCode.badInput);
    })
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .parseAsync();
}

main(hideBin(process.argv)).catch((err: unknown) => {
  const code = exitCodeOf(err);
  process.stderr.write(`ddt: error: ${messageOf(err)}\n`);
  if (code === ExitCode.internal && process.env.DDT_DEBUG) process.stderr.write(`${(err as Error)?.stack}\n`);
  process.exitCode = code;
});
