import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { cleanCommand } from './commands/clean.js';
import { copyCommand } from './commands/copy.js';
import { demoCommand } from './commands/demo.js';
import { sendCommand } from './commands/send.js';
import { pullCommand } from './commands/pull.js';
import { resumeCommand } from './commands/resume.js';
import { statusCommand } from './commands/status.js';
import { verifyCommand } from './commands/verify.js';
import { operandsAfterDashDash, rewriteLegacyArgv } from './legacy.js';
import { clean } from './terminal.js';
import { ExitCode, messageOf, exitCodeOf } from '../errors.js';

/** The only place that maps errors to exit codes and touches process.exit. */
async function main(argv: string[]): Promise<void> {
  // The original script's `ddt --local_device … --TargetHost …` / `--restart REPORT` forms.
  const cli = yargs(operandsAfterDashDash(rewriteLegacyArgv(argv)));
  skipHelpCache(cli);
  await cli
    .scriptName('ddt')
    .usage('ddt <command>: move a whole block device or disk image, verified block by block, resumable')
    .command(sendCommand)
    .command(pullCommand)
    .command(copyCommand)
    .command(verifyCommand)
    .command(statusCommand)
    .command(resumeCommand)
    .command(cleanCommand)
    .command(demoCommand)
    .demandCommand(1, 'give a command: ddt --help lists them')
    .strict()
    .recommendCommands()
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`ddt: error: ${msg}: see ddt --help\n`);
      process.exit(ExitCode.badInput);
    })
    .epilogue("The original dd-transfer script's form works too: ddt --local_device SRC --remote_device DEV --TargetHost HOST [--remote_transfer_dir DIR] [--ssh_port N] [--keep_logs] is ddt send; ddt --restart REPORT is ddt resume.")
    .help()
    .version(packageVersion())
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .parseAsync();
}

/** package.json's version: src/cli (tsx) and dist/cli (the bundle) are both two levels below it. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/**
 * yargs renders a command's whole help text before running its handler, to have it at hand
 * for a later failure: ≈ 45 ms of string measuring on the event loop at the start of every
 * run, while the run's first I/O waits. Our `.fail` prints one line and never that text
 * (`--help` renders its own), so the cache is skipped. Internal API: if a yargs release drops
 * it, nothing breaks, start-up is just slower again.
 */
function skipHelpCache(cli: unknown): void {
  const usage = (cli as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: unknown } } }).getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

let settled = false;
// A run waiting on something that can no longer happen would otherwise end with exit 0.
process.once('beforeExit', () => {
  if (settled) return;
  process.stderr.write('ddt: error: internal error: the run was left waiting with nothing left to wait for\n');
  process.exitCode = ExitCode.internal;
});
main(hideBin(process.argv))
  .catch((err: unknown) => {
    const code = exitCodeOf(err);
    process.stderr.write(`ddt: error: ${clean(messageOf(err))}\n`);
    if (code === ExitCode.internal && process.env.DDT_DEBUG) process.stderr.write(`${(err as Error)?.stack}\n`);
    process.exitCode = code;
  })
  .finally(() => (settled = true));
