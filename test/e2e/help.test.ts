// Every option of the product's command-line contract appears in the `--help` of the command it
// belongs to, and every command's help shows real examples. Runs the built CLI.
import assert from 'node:assert/strict';
import { runCli } from './cli.js';

/** The options common to transfers. */
const TRANSFER = [
  '-b', '--block-size', '--connections', '--channels', '--via', '--checksum', '--skip-identical', '--target-zeroed',
  '--compress', '--bwlimit', '--noerror', '--engine', '--journal', '--keep-logs', '--dry-run', '-y', '--yes',
  '--progress', '--json', '--retries', '--force',
];
/** The SSH options. */
const SSH = ['-p', '--port', '-l', '--user', '-i', '--identity', '--known-hosts', '--accept-new-host-key', '--ssh-config', '--sudo'];

const EXPECTED: Record<string, string[]> = {
  send: [...TRANSFER, ...SSH, '--remote-dir'],
  pull: [...TRANSFER, ...SSH],
  // Local → local: the SSH, data-path and link options have no meaning there.
  copy: ['-b', '--block-size', '--channels', '--checksum', '--skip-identical', '--target-zeroed', '--noerror', '--journal', '--dry-run', '-y', '--yes', '--progress', '--json', '--retries', '--force'],
  verify: ['-b', '--block-size', '--checksum', '--json', ...SSH],
  // The overrides a resume takes; -y/--yes is accepted (the job was confirmed when it started).
  resume: ['--connections', '--channels', '--bwlimit', '--progress', '--engine', '--via', '-i', '--identity', '--known-hosts', '--ssh-config', '--reconnect-timeout', '--reverify', '-y', '--yes', '--json'],
  status: ['--json'],
  // A journal's own leftovers, or a whole host's (--host and how to reach it).
  clean: ['--host', '-p', '--port', '-i', '--identity', '--known-hosts', '--ssh-config', '-J', '--jump', '--sudo', '--remote-dir', '-y', '--yes', '--json'],
  demo: ['--size', '--progress', '--json'],
};

/** Values of the options with a fixed set of choices. */
const CHOICES: Record<string, Record<string, string[]>> = {
  send: { '--via': ['openssh', 'sftp', 'stream'], '--checksum': ['xxh64', 'sha256', 'auto'], '--compress': ['none', 'gzip', 'auto'], '--engine': ['native', 'rsync'], '--progress': ['auto', 'tty', 'plain', 'json', 'none'] },
  pull: { '--via': ['openssh', 'stream'], '--checksum': ['xxh64', 'sha256', 'auto'], '--progress': ['auto', 'tty', 'plain', 'json', 'none'] },
  copy: { '--checksum': ['xxh64', 'sha256', 'auto'], '--progress': ['auto', 'tty', 'plain', 'json', 'none'] },
};

/** The original script's option names, which the bare form `ddt --local_device …` accepts. */
const SCRIPT_ALIASES = ['--local_device', '--remote_device', '--TargetHost', '--remote_transfer_dir', '--ssh_port', '--keep_logs', '--restart'];

function mentions(help: string, option: string): boolean {
  const escaped = option.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&');
  return new RegExp(`(^|[\\s,\\[])${escaped}(?![\\w-])`, 'm').test(help);
}

describe('e2e: --help of every command', function () {
  const helps = new Map<string, string>();

  before(async () => {
    for (const cmd of ['', ...Object.keys(EXPECTED)]) {
      const r = await runCli(cmd ? [cmd, '--help'] : ['--help'], { env: { COLUMNS: '120' } });
      assert.equal(r.code, 0, r.stderr);
      helps.set(cmd, r.stdout);
    }
  });

  it('ddt --help lists every command', () => {
    for (const cmd of ['send', 'pull', 'copy', 'verify', 'resume', 'status', 'clean', 'demo']) assert.ok(mentions(helps.get('')!, `ddt ${cmd}`) || helps.get('')!.includes(`ddt ${cmd} `), `ddt ${cmd} missing`);
  });

  it("ddt --help names the original script's options (the bare form is ddt send / resume)", () => {
    for (const alias of SCRIPT_ALIASES) assert.ok(mentions(helps.get('')!, alias), `${alias} missing from ddt --help`);
  });

  for (const [cmd, options] of Object.entries(EXPECTED)) {
    describe(`ddt ${cmd} --help`, () => {
      for (const option of options) {
        it(`names ${option}`, () => assert.ok(mentions(helps.get(cmd)!, option), `${option} missing from:\n${helps.get(cmd)}`));
      }

      for (const [option, values] of Object.entries(CHOICES[cmd] ?? {})) {
        it(`lists the values of ${option}`, () => {
          const help = helps.get(cmd)!;
          for (const v of values) assert.match(help, new RegExp(`"${v}"`), `${option} ${v} missing`);
        });
      }

      it('shows real examples of this command', () => {
        const help = helps.get(cmd)!;
        assert.match(help, /^Examples:/m);
        const examples = help.slice(help.indexOf('Examples:')).split('\n').filter((l) => l.trim().startsWith(`ddt ${cmd}`));
        assert.ok(examples.length >= 1, `no "ddt ${cmd} …" example`);
      });
    });
  }
});
