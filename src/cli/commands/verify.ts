import type { CommandModule } from 'yargs';
import type { ChecksumAlgo } from '../../checksum/types.js';
import { runVerify, type VerifyResult } from '../../engine/verify.js';
import { ExitCode } from '../../errors.js';
import { blockSizeOf, channelsOf, connectionsOf, sshRequestOf } from '../options.js';
import { printJson } from '../output.js';
import { RunUi } from '../ui.js';

export const verifyCommand: CommandModule = {
  command: 'verify <source> <target>',
  describe: 'compare block checksums of source and target ([user@]host:/path or local) and list the differing byte ranges (never writes)',
  builder: (y) =>
    y
      .positional('source', { type: 'string', describe: 'local block device or image file' })
      .positional('target', { type: 'string', describe: 'local device or file, or [user@]host:/path (hashed on that host)' })
      .option('block-size', { alias: 'b', type: 'string', default: '64M', describe: 'comparison unit' })
      .option('checksum', { choices: ['xxh64', 'sha256', 'auto'] as const, default: 'auto' as const })
      .option('channels', { type: 'number', default: 4, describe: 'blocks hashed in parallel (per connection for a remote target)' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' })
      .option('connections', { type: 'number', default: 2, describe: 'remote target: SSH (TCP) connections' })
      .option('port', { alias: 'p', type: 'number', describe: 'remote target: SSH port [22 or ~/.ssh/config]' })
      .option('user', { alias: 'l', type: 'string', describe: 'remote target: user [from the target, ~/.ssh/config, or $USER]' })
      .option('identity', { alias: 'i', type: 'string', array: true, describe: 'remote target: private key file (after ssh-agent); repeatable' })
      .option('known-hosts', { type: 'string', describe: 'remote target: known_hosts file to use instead of ~/.ssh/known_hosts' })
      .option('accept-new-host-key', { type: 'boolean', default: false, describe: 'remote target: trust an unknown host key and record it (never a changed one)' })
      .option('ssh-config', { type: 'string', describe: 'remote target: ssh config file [~/.ssh/config]' })
      .option('jump', { alias: 'J', type: 'string', describe: 'remote target: jump host(s), like ssh -J: [user@]host[:port][,…]' })
      .option('sudo', { type: 'boolean', default: false, describe: 'remote target: run the helper through sudo -n' })
      .example('$0 verify disk.img /dev/loop3', 'exit 0 when identical, 4 when not')
      .example('$0 verify /dev/sdb root@10.0.0.5:/dev/vdb --json', 'prove a migrated disk again, hashing the remote side there'),
  handler: async (argv) => {
    const ui = new RunUi('none');
    try {
      const r = await runVerify(
        {
          source: String(argv.source),
          target: String(argv.target),
          blockSize: blockSizeOf(argv['block-size']),
          checksum: argv.checksum as ChecksumAlgo | 'auto',
          connections: connectionsOf(argv.connections),
          channels: channelsOf(argv.channels),
          ssh: sshRequestOf(argv),
          // verify has no --reconnect-timeout: a host gone for a minute ends it.
          reconnectTimeoutMs: 60_000,
        },
        ui.jobUi(false),
      ).catch((err: unknown) => Promise.reject(ui.outcomeOf(err)));
      report(r, Boolean(argv.json));
    } finally {
      ui.finish();
    }
  },
};

/** Differing ranges (half-open byte ranges), then the count; exit 0 identical, 4 when not. */
function report(r: VerifyResult, json: boolean): void {
  if (json) printJson(r);
  else {
    const lines = r.differences.map((d) => `${d.offset}..${d.offset + d.length} (${d.length} bytes)`);
    lines.push(`${r.identical}/${r.blocks} blocks identical${r.different ? `, ${r.different} differ` : ''} (${r.checksum})`);
    process.stdout.write(lines.join('\n') + '\n');
  }
  process.exitCode = r.different ? ExitCode.incomplete : ExitCode.ok;
}
