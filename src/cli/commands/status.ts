import type { CommandModule } from 'yargs';
import { readJournal } from '../../journal/journal.js';
import { journalStatus } from '../../journal/status.js';
import { describeEnd } from '../../engine/job.js';
import { formatBytes } from '../../progress/format.js';
import { printJson } from '../output.js';

export const statusCommand: CommandModule = {
  command: 'status <journal>',
  describe: 'summary of a journal: blocks per state, bytes proven, last error',
  builder: (y) =>
    y
      .positional('journal', { type: 'string', describe: 'journal file written by a run' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
      .example('$0 status ddt-20261128T101500Z.journal', 'how far did that run get?'),
  handler: (argv) => {
    const path = String(argv.journal);
    const st = journalStatus(readJournal(path), path, describeEnd);
    if (argv.json) return printJson(st);
    const lines = [
      `${st.command} ${st.source} -> ${st.target}`,
      `${st.verified}/${st.blocks} blocks verified, ${st.pending} pending (${st.failed} failed on the last try)`,
      `${formatBytes(st.bytesVerified)} of ${formatBytes(st.bytesTotal)} proven, ${st.checksum}, block size ${formatBytes(st.blockSize)}, ${st.runs} run(s)`,
    ];
    if (st.badRanges.length) lines.push(`unreadable source ranges: ${st.badRanges.map((r) => `${r.offset}..${r.offset + r.length}`).join(', ')}`);
    if (st.lastError) lines.push(`last error: ${st.lastError}`);
    lines.push(st.finished ? 'finished: every block verified' : `not finished: continue with ddt resume ${path}`);
    process.stdout.write(lines.join('\n') + '\n');
  },
};
