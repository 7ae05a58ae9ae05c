import type { CommandModule } from 'yargs';
import { cleanHost, cleanJob, type CleanItem, type CleanReport } from '../../engine/clean.js';
import { DdtError, ExitCode, exitCodeOf, messageOf } from '../../errors.js';
import { formatBytes } from '../../format.js';
import { readJournal } from '../../journal/journal.js';
import { removable } from '../../remote/leftovers.js';
import { resolveEndpoint } from '../../transport/endpoint.js';
import { parseRemoteSpec } from '../../transport/target-spec.js';
import { jumpOf } from '../options.js';
import { printJson } from '../output.js';
import { clean } from '../terminal.js';
import { RunUi } from '../ui.js';

const USAGE = 'give a journal (ddt clean JOURNAL) or a host (ddt clean --host [user@]host)';

export const cleanCommand: CommandModule = {
  command: 'clean [journal]',
  describe: "remove what ended runs left on the remote host: staging dirs, helper work dirs, stale locks (a job's own, or a whole host's)",
  builder: (y) =>
    y
      .positional('journal', { type: 'string', describe: "journal of the job whose leftovers go (removed at once: they are the job's own)" })
      .option('host', { type: 'string', describe: 'list every ddt leftover on [user@]host instead (removed only with --yes)' })
      .option('port', { alias: 'p', type: 'number', describe: '--host: SSH port [22 or ~/.ssh/config]' })
      .option('identity', { alias: 'i', type: 'string', array: true, describe: 'private key file(s) (a journal: instead of the recorded ones)' })
      .option('known-hosts', { type: 'string', describe: 'known_hosts file (a journal: instead of the recorded one)' })
      .option('ssh-config', { type: 'string', describe: 'ssh config file (jump hosts, proxies)' })
      .option('jump', { alias: 'J', type: 'string', describe: '--host: jump host(s), like ssh -J: [user@]host[:port][,…]' })
      .option('sudo', { type: 'boolean', default: false, describe: "--host: run the helper through sudo -n (root's locks; a journal records it)" })
      .option('remote-dir', { type: 'string', describe: '--host: look for staging dirs there too (besides the remote $HOME)' })
      .option('yes', { alias: 'y', type: 'boolean', default: false, describe: '--host: remove what is listed and not in use (without: only list)' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
      .example('$0 clean ddt-20261128T101500Z.journal', "remove that killed job's staging dir, work dir and stale locks")
      .example('$0 clean --host root@10.0.0.5 --remote-dir /srv/stage', 'list every ddt leftover there, remove nothing')
      .example('$0 clean --host root@10.0.0.5 --yes', 'remove those that no running job uses'),
  handler: async (argv) => {
    const journal = argv.journal as string | undefined;
    const host = argv.host as string | undefined;
    if ((journal === undefined) === (host === undefined)) throw new DdtError('BAD_OPTION', journal === undefined ? USAGE : `${USAGE}, not both`);
    if (journal !== undefined) {
      for (const [name, given] of [['--port', argv.port !== undefined], ['--jump', argv.jump !== undefined], ['--sudo', argv.sudo === true], ['--remote-dir', argv['remote-dir'] !== undefined]] as const) {
        if (given) throw new DdtError('BAD_OPTION', `${name} is for clean --host: a journal records how to reach its host and where it staged`);
      }
    }
    const ui = new RunUi('none');
    try {
      const ssh = { identity: argv.identity as string[] | undefined, knownHosts: argv['known-hosts'] as string | undefined, sshConfig: argv['ssh-config'] as string | undefined };
      let report: CleanReport | undefined;
      if (journal !== undefined) {
        const state = readJournal(journal);
        report = await cleanJob({ journal, state, overrides: ssh }, ui.jobUi(false)).catch((err: unknown) => Promise.reject(ui.outcomeOf(err)));
        if (!report) {
          if (argv.json) printJson({ ok: true, exitCode: 0, job: state.header.jobId, removed: 0, items: [] });
          else process.stdout.write('nothing to clean: a copy journal has no remote host\n');
          return;
        }
      } else {
        const endpoint = await resolveEndpoint(hostSpecOf(host!), { ...ssh, port: argv.port as number | undefined, jump: jumpOf(argv.jump) });
        const o = { endpoint, host: host!, sudo: Boolean(argv.sudo), remoteDir: argv['remote-dir'] as string | undefined, remove: Boolean(argv.yes) };
        report = await cleanHost(o, ui.jobUi(false)).catch((err: unknown) => Promise.reject(ui.outcomeOf(err)));
      }
      print(report!, Boolean(argv.json));
    } catch (err) {
      if (argv.json) printJson({ ok: false, exitCode: ui.signal.aborted ? ExitCode.interrupted : exitCodeOf(err), error: messageOf(err) });
      throw err;
    } finally {
      ui.finish();
    }
  },
};

/** `[user@]host` (a list of addresses, an IPv6 one in brackets): a remote location without its path. */
function hostSpecOf(text: string) {
  try {
    return parseRemoteSpec(`${text}:/`);
  } catch {
    throw new DdtError('BAD_OPTION', `--host ${JSON.stringify(text)}: expected [user@]host (the port goes in -p, an IPv6 address in brackets)`);
  }
}

type State = 'removed' | 'would-remove' | 'in-use' | 'kept' | 'failed' | 'gone';

function stateOf(i: CleanItem, removing: boolean): State {
  if (i.removal) return i.removal.error !== undefined ? 'failed' : i.removal.removed ? 'removed' : i.kind === 'staging' && i.others ? 'kept' : 'gone';
  if (i.inUse) return 'in-use';
  if (!removable(i)) return 'kept';
  return removing ? 'gone' : 'would-remove';
}

const IRREGULAR: Record<string, string> = { 'other entry': 'other entries', 'helper process': 'helper processes' };
const plural = (n: number, one: string) => `${n} ${n === 1 ? one : (IRREGULAR[one] ?? `${one}s`)}`;

/** What an item is, where, and how much it holds where that is known. */
function what(i: CleanItem, host: string, stale: boolean): string {
  const where = `${host}:${i.path}`;
  const counted = i.files === undefined ? '' : ` (${plural(i.files, i.kind === 'staging' ? 'block file' : 'file')}, ${formatBytes(i.bytes ?? 0)})`;
  if (i.kind === 'staging') return `staging dir ${where}${counted}`;
  if (i.kind === 'workdir') return `helper work dir ${where}${counted}`;
  return `${stale ? 'stale ' : ''}lock dir ${where} (job ${i.job})`;
}

function line(i: CleanItem, state: State, host: string): string | undefined {
  const r = i.removal;
  switch (state) {
    case 'removed':
      if (i.kind === 'staging' && !r!.dirRemoved) return `removed ${plural(r!.files ?? 0, 'block file')} (${formatBytes(r!.bytes ?? 0)}) from staging dir ${host}:${i.path}; the dir stays: it holds ${plural(i.others ?? 0, 'other entry')}`;
      return `removed ${what(i, host, true)}${r!.killed ? `; ended ${plural(r!.killed, 'helper process')}` : ''}`;
    case 'would-remove':
      return `would remove ${what(i, host, true)}${i.kind === 'staging' && i.others ? ` but not its ${plural(i.others, 'other entry')} (the dir stays)` : ''}`;
    case 'in-use':
      return `in use, kept: ${what(i, host, false)}: ${!i.live ? `job ${i.job} is running` : i.kind === 'lock' ? 'held by a live process' : 'a helper of it is running'}`;
    case 'kept':
      return `left alone: ${host}:${i.path} holds no block files of ddt's (${plural(i.others ?? 0, 'other entry')})`;
    case 'failed':
      return `could not remove ${what(i, host, true)}: ${r!.error}`;
    case 'gone':
      return undefined;
  }
}

/** One line per item, then what it comes to; exit 4 when a removal failed. */
function print(report: CleanReport, json: boolean): void {
  const states = report.items.map((i) => stateOf(i, report.removing));
  const failed = states.includes('failed');
  process.exitCode = failed ? ExitCode.incomplete : ExitCode.ok;
  if (json) {
    const items = report.items.map((i, n) => ({ kind: i.kind, path: i.path, job: i.job, state: states[n], files: i.removal?.files ?? i.files, bytes: i.removal?.bytes ?? i.bytes, others: i.others, killed: i.removal?.killed, error: i.removal?.error }));
    return printJson({ ok: !failed, exitCode: process.exitCode, host: report.host, ...(report.job !== undefined && { job: report.job }), removed: states.filter((s) => s === 'removed').length, items });
  }
  const lines = report.items.map((i, n) => line(i, states[n]!, report.host)).filter((l): l is string => l !== undefined);
  if (!states.some((s) => s === 'removed' || s === 'would-remove' || s === 'failed')) {
    lines.push(report.job !== undefined ? `nothing to remove for job ${report.job} on ${report.host}` : `nothing to remove on ${report.host}`);
  } else if (!report.removing) lines.push('nothing removed: run it again with --yes to remove what is listed as "would remove"');
  process.stdout.write(lines.map((l) => clean(l, { newlines: false })).join('\n') + '\n');
}
