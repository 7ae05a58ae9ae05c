import type { CommandModule } from 'yargs';
import { ExitCode } from '../../errors.js';
import { formatBytes } from '../../format.js';
import { readJournal } from '../../journal/journal.js';
import { journalStatus } from '../../journal/status.js';
import { printJson, zeroLine } from '../output.js';
import { clean } from '../terminal.js';

export const statusCommand: CommandModule = {
  command: 'status <journal>',
  describe: 'summary of a journal: blocks per state, bytes proven, last error (exit 0 finished, 4 not)',
  builder: (y) =>
    y
      .positional('journal', { type: 'string', describe: 'journal file written by a run' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
      .example('$0 status ddt-20261128T101500Z.journal', 'how far did that run get?'),
  handler: (argv) => {
    const path = String(argv.journal);
    const st = journalStatus(readJournal(path), path);
    process.exitCode = st.finished ? ExitCode.ok : ExitCode.incomplete;
    if (argv.json) return printJson(st);
    const lines = [
      `${st.command} ${st.source} -> ${st.target}`,
      `${st.verified}/${st.blocks} blocks verified, ${st.pending} pending (${st.failed} failed on the last try)`,
      `${formatBytes(st.bytesVerified)} of ${formatBytes(st.bytesTotal)} proven, ${st.checksum}, block size ${formatBytes(st.blockSize)}, ${st.runs} run(s)`,
      `target: ${zeroLine(st)}`,
    ];
    if (st.badRanges.length) lines.push(`unreadable source ranges: ${st.badRanges.map((r) => `${r.offset}..${r.offset + r.length}`).join(', ')}`);
    if (st.lastError) lines.push(`last error${st.lastErrorRun ? ` (run ${st.lastErrorRun})` : ''}: ${st.lastError}`);
    lines.push(st.finished ? 'finished: every block verified' : `not finished: continue with ddt resume ${path}`);
    process.stdout.write(lines.map((l) => clean(l, { newlines: false })).join('\n') + '\n');
  },
};
