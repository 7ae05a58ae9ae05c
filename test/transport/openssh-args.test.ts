import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Endpoint, JumpHost } from '../../src/transport/endpoint.js';
import { masterArgs } from '../../src/transport/openssh-args.js';

const TIMING = { connectTimeoutS: 12, aliveIntervalS: 2 };

/** The value of `-o Name=…` in an argv. */
function option(args: string[], name: string): string | undefined {
  const i = args.findIndex((a, k) => args[k - 1] === '-o' && a.startsWith(`${name}=`));
  return i < 0 ? undefined : args[i]!.slice(name.length + 1);
}

/** ssh's expansion of a ProxyCommand's tokens (the ones ddt leaves in it). */
function expand(cmd: string, host: string, port: number): string {
  return cmd.replace(/%([%hp])/g, (_, t: string) => (t === '%' ? '%' : t === 'h' ? host : String(port)));
}

describe('transport/openssh-args: the master’s way to the host, every setting explicit', () => {
  let dir: string;
  let fakeSsh: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ddt-sshargs-'));
    fakeSsh = join(dir, 'ssh');
    // Records its argv, one per line, instead of connecting.
    await writeFile(fakeSsh, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > ${join(dir, 'argv')}\n`, { mode: 0o755 });
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const target: Endpoint = { hosts: ['10.0.0.9'], port: 2200, user: 'admin', identityFiles: ['/k/target'], userKnownHostsFiles: ['/kh/a b', '/kh/c'], identitiesOnly: true };

  it('a direct host: -F /dev/null, strict host keys, the config’s known_hosts (global ones kept), IdentitiesOnly, timing', () => {
    const args = masterArgs(target, '/tmp/s/cm', '/usr/bin/ssh', TIMING);
    assert.deepEqual(args.slice(0, 2), ['-F', '/dev/null']);
    assert.equal(option(args, 'StrictHostKeyChecking'), 'yes');
    assert.equal(option(args, 'UserKnownHostsFile'), '"/kh/a b" /kh/c');
    assert.equal(option(args, 'GlobalKnownHostsFile'), undefined);
    assert.equal(option(args, 'IdentitiesOnly'), 'yes');
    assert.equal(option(args, 'ConnectTimeout'), '12');
    assert.equal(option(args, 'ServerAliveInterval'), '2');
    assert.equal(option(args, 'ProxyCommand'), undefined);
    assert.deepEqual(args.slice(-3), ['--', '10.0.0.9', 'cat']);
    const known = masterArgs({ ...target, knownHostsFile: '/only' }, '/tmp/s/cm', '/usr/bin/ssh', TIMING);
    assert.equal(option(known, 'GlobalKnownHostsFile'), '/dev/null');
  });

  it('a ProxyCommand (already expanded) is passed with its % kept literal', () => {
    const args = masterArgs({ ...target, proxyCommand: 'nc -X 5 -x proxy:1080 10.0.0.9 2200 # 100%' }, '/tmp/s/cm', '/usr/bin/ssh', TIMING);
    assert.equal(option(args, 'ProxyCommand'), 'nc -X 5 -x proxy:1080 10.0.0.9 2200 # 100%%');
  });

  it('two jump hosts: nested ssh -W commands that, expanded level by level, carry each hop’s own settings', async () => {
    const hop = (name: string, host: string, port: number, extra: Partial<JumpHost> = {}): JumpHost => ({ name, host, port, user: `u-${name}`, identityFiles: [`/keys/${name} 100% it's`], ...extra });
    const e: Endpoint = { ...target, hops: [hop('outer', '192.0.2.1', 2222, { knownHostsFile: '/kh/outer' }), hop('inner', '10.1.0.1', 22, { connectTimeoutMs: 5000 })] };
    const way = option(masterArgs(e, '/tmp/s/cm', fakeSsh, TIMING), 'ProxyCommand')!;

    // The master runs the way to reach the target: the inner hop, forwarding to the target.
    execFileSync('sh', ['-c', `exec ${expand(way, '10.0.0.9', 2200)}`]);
    const inner = (await readFile(join(dir, 'argv'), 'utf8')).trimEnd().split('\n');
    assert.deepEqual(inner.slice(-4), ['-W', '[10.0.0.9]:2200', '--', '10.1.0.1']);
    assert.deepEqual(inner.slice(0, 2), ['-F', '/dev/null']);
    assert.equal(inner[inner.indexOf('-l') + 1], 'u-inner');
    assert.equal(inner[inner.indexOf('-p') + 1], '22');
    // ssh expands -i tokens itself: a literal % stays doubled here.
    assert.equal(inner[inner.indexOf('-i') + 1], "/keys/inner 100%% it's");
    assert.equal(option(inner, 'ConnectTimeout'), '5');
    assert.equal(option(inner, 'StrictHostKeyChecking'), 'yes');
    // A hop given no known_hosts settings leaves OpenSSH's defaults.
    assert.equal(option(inner, 'UserKnownHostsFile'), undefined);

    // The inner hop's ssh runs its own ProxyCommand to reach it: the outer hop.
    execFileSync('sh', ['-c', `exec ${expand(option(inner, 'ProxyCommand')!, '10.1.0.1', 22)}`]);
    const outer = (await readFile(join(dir, 'argv'), 'utf8')).trimEnd().split('\n');
    assert.deepEqual(outer.slice(-4), ['-W', '[10.1.0.1]:22', '--', '192.0.2.1']);
    assert.equal(outer[outer.indexOf('-p') + 1], '2222');
    assert.equal(outer[outer.indexOf('-i') + 1], "/keys/outer 100%% it's");
    assert.equal(option(outer, 'UserKnownHostsFile'), '/kh/outer');
    assert.equal(option(outer, 'GlobalKnownHostsFile'), '/dev/null');
    assert.equal(option(outer, 'ProxyCommand'), undefined);
  });
});
