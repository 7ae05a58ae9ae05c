import type { CommandModule } from 'yargs';
import { DemoEnvironment } from '../../demo/demo.js';
import type { JobUi } from '../../engine/ui.js';
import { runJob } from '../../engine/job.js';
import { runVerify } from '../../engine/verify.js';
import type { JobSummary } from '../../engine/summary.js';
import { parseSize } from '../../format.js';
import { blockSizeOf, positiveInt } from '../options.js';
import { printJson, printSummary, throughputOf } from '../output.js';
import { RunUi, type ProgressMode } from '../ui.js';
import { DdtError, ExitCode } from '../../errors.js';

export const demoCommand: CommandModule = {
  command: 'demo',
  describe: 'watch ddt work on this machine: a generated image sent to a private loopback sshd, verified, everything removed again',
  builder: (y) =>
    y
      .option('size', { type: 'string', default: '1G', describe: 'size of the generated mixed image (K/M/G; at least 1M)' })
      .option('block-size', { alias: 'b', type: 'string', default: '16M', describe: 'unit of checksum, journal and retransmission (multiple of 512)' })
      .option('connections', { type: 'number', default: 2, describe: 'SSH (TCP) connections for the data path' })
      .option('channels', { type: 'number', default: 4, describe: 'channels per connection' })
      .option('progress', { choices: ['auto', 'tty', 'plain', 'json', 'none'] as const, default: 'auto' as const, describe: 'progress display on stderr' })
      .option('json', { type: 'boolean', default: false, describe: 'final summary (with the verify result) as one JSON object on stdout' })
      .example('$0 demo', '1 GiB: to a loop device as root, else to an image file; no --yes needed, it touches only what it creates')
      .example('$0 demo --size 256M --progress plain', 'a quicker run with log-friendly progress lines'),
  handler: async (argv) => {
    const json = Boolean(argv.json);
    const say = (line: string) => process.stderr.write(`ddt demo: ${line}\n`);
    // Only the throwaway key: an agent with many keys could use up sshd's MaxAuthTries first.
    delete process.env.SSH_AUTH_SOCK;
    const abort = new AbortController();
    let transferring = false;
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      // During the transfer RunUi reports and stops it (journal first); cleanup follows here.
      if (++signals > 1) process.exit(ExitCode.interrupted);
      if (!transferring) say(`${sig} received: cleaning up (again to quit at once)`);
      abort.abort(new Error(sig));
    };
    let env: DemoEnvironment | undefined;
    // A second Ctrl-C exits at once: sshd, loop device and files still go, synchronously.
    const atExit = () => env?.cleanupNow();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('exit', atExit);
    try {
      env = await DemoEnvironment.create({
        size: parseSize(String(argv.size), '--size'),
        blockSize: blockSizeOf(argv['block-size']),
        blockSizeText: String(argv['block-size']),
        connections: positiveInt(argv.connections, '--connections', 64),
        channels: positiveInt(argv.channels, '--channels', 64),
        signal: abort.signal,
        say,
      });
      say(`running: ${env.commandLine()}`);
      // The demo cleans up after the run (sshd, loop device, files): no exit before that.
      const ui = new RunUi(argv.progress as ProgressMode, { stopWithinMs: false });
      let summary: JobSummary;
      transferring = true;
      try {
        const outcome = await runJob(env.sendRequest(), ui.jobUi(true));
        if (outcome.kind !== 'done') throw new Error(`unexpected ${outcome.kind} outcome`);
        summary = outcome.summary;
        ui.finish(summary);
      } finally {
        transferring = false;
        ui.finish();
      }
      const run = { bytesProven: ui.bytesProvenThisRun() };
      if (!summary.ok || abort.signal.aborted) {
        // Its journal goes with everything else: there is nothing to resume.
        const why = summary.exitCode === ExitCode.interrupted || abort.signal.aborted ? 'interrupted' : (summary.error ?? 'not finished').split('; ')[0];
        summary = { ...summary, error: `${why}; the demo keeps nothing, run ddt demo again` };
        printSummary(summary, json, run);
        process.exitCode = summary.ok ? ExitCode.interrupted : summary.exitCode;
        return;
      }
      say('verifying: ddt verify re-reads the source here and the target through sshd, block by block');
      const jobUi: JobUi = { confirm: () => Promise.resolve(true), emit: () => {}, signal: abort.signal };
      const verify = await runVerify(env.verifyRequest(), jobUi);
      const ok = verify.different === 0;
      if (json) printJson({ ...summary, ...throughputOf(summary, run), ok, exitCode: ok ? 0 : ExitCode.incomplete, verify });
      else {
        printSummary(summary, false, run);
        process.stdout.write(`verify: ${verify.identical}/${verify.blocks} blocks identical (${verify.checksum})${ok ? '' : `, ${verify.different} differ`}\n`);
      }
      process.exitCode = ok ? ExitCode.ok : ExitCode.incomplete;
    } catch (err) {
      const refusal = err instanceof DdtError && err.exitCode === 3 ? env?.sshdRefusal() : undefined;
      if (refusal) {
        // A non-root sshd can log in only its own user, and only an account that is not locked.
        throw new DdtError(err instanceof DdtError && err.exitCode === 3 ? err.code : 'SSH_AUTH', `the demo's sshd refused the login (${refusal}): run ddt demo as root, or as a user whose account can log in`);
      }
      if (!abort.signal.aborted) throw err;
      say('interrupted');
      process.exitCode = ExitCode.interrupted;
    } finally {
      if (env) say(`cleaned up: ${(await env.cleanup()).join(', ')}`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('exit', atExit);
    }
  },
};
