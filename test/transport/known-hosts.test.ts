import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { appendKnownHost, checkHostKey, fingerprintOf, hostFieldMatches, keyTypeOfBlob } from '../../src/transport/known-hosts.js';

const run = promisify(execFile);

interface Key {
  type: string;
  b64: string;
  blob: Buffer;
  fingerprint: string;
}

async function makeKey(dir: string, name: string, type: 'ed25519' | 'ecdsa' | 'rsa'): Promise<Key> {
  const path = join(dir, name);
  await run('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-f', path]);
  const [kt, b64] = (await readFile(`${path}.pub`, 'utf8')).trim().split(' ');
  const fingerprint = (await run('ssh-keygen', ['-lf', `${path}.pub`])).stdout.split(' ')[1];
  return { type: kt, b64, blob: Buffer.from(b64, 'base64'), fingerprint };
}

describe('transport/known-hosts', function () {
  this.timeout(30_000);
  let dir: string;
  let ed: Key;
  let ed2: Key;
  let ec: Key;
  let rsa: Key;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ddt-kh-'));
    [ed, ed2, ec, rsa] = await Promise.all([
      makeKey(dir, 'ed', 'ed25519'),
      makeKey(dir, 'ed2', 'ed25519'),
      makeKey(dir, 'ec', 'ecdsa'),
      makeKey(dir, 'rsa', 'rsa'),
    ]);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, lines: string[]): Promise<string> {
    const p = join(dir, name);
    await writeFile(p, lines.join('\n') + '\n');
    return p;
  }

  it('fingerprints like ssh-keygen -l and reads the type from the blob', () => {
    for (const k of [ed, ec, rsa]) {
      assert.equal(fingerprintOf(k.blob), k.fingerprint);
      assert.equal(keyTypeOfBlob(k.blob), k.type);
    }
  });

  it('plain host, comma lists, comments, [host]:port', async () => {
    const f = await file('plain', [
      '# a comment',
      '',
      `other.example ${ed2.type} ${ed2.b64}`,
      `alpha,beta.example,10.0.0.7 ${ed.type} ${ed.b64} comment here`,
      `[gamma]:2222 ${ec.type} ${ec.b64}`,
    ]);
    for (const h of ['alpha', 'beta.example', '10.0.0.7', 'BETA.example']) {
      assert.equal((await checkHostKey([f], h, 22, ed.type, ed.blob)).status, 'ok', h);
    }
    assert.equal((await checkHostKey([f], 'gamma', 2222, ec.type, ec.blob)).status, 'ok');
    // Port 22 entries do not vouch for other ports, and vice versa (as in ssh).
    assert.equal((await checkHostKey([f], 'alpha', 2222, ed.type, ed.blob)).status, 'unknown');
    assert.equal((await checkHostKey([f], 'gamma', 22, ec.type, ec.blob)).status, 'unknown');
    assert.equal((await checkHostKey([f], 'delta', 22, ed.type, ed.blob)).status, 'unknown');
  });

  it('a different key of the same type is "changed"; only another type is "unknown"', async () => {
    const f = await file('changed', [`alpha ${ed.type} ${ed.b64}`]);
    const changed = await checkHostKey([f], 'alpha', 22, ed2.type, ed2.blob);
    assert.equal(changed.status, 'changed');
    assert.equal(changed.fingerprint, ed2.fingerprint);
    assert.equal(changed.offending, `${f}:1`);
    const other = await checkHostKey([f], 'alpha', 22, ec.type, ec.blob);
    assert.equal(other.status, 'unknown');
    assert.deepEqual(other.knownTypes, [ed.type]);
  });

  it('hashed entries from ssh-keygen -H, with and without port', async () => {
    const f = await file('hashed', [`alpha ${ed.type} ${ed.b64}`, `[alpha]:2222 ${rsa.type} ${rsa.b64}`, `beta ${ec.type} ${ec.b64}`]);
    await run('ssh-keygen', ['-H', '-f', f]);
    const text = await readFile(f, 'utf8');
    assert.ok(!/alpha|beta/.test(text), 'ssh-keygen hashed every name');
    assert.equal((await checkHostKey([f], 'alpha', 22, ed.type, ed.blob)).status, 'ok');
    assert.equal((await checkHostKey([f], 'alpha', 2222, 'rsa-sha2-512', rsa.blob)).status, 'ok');
    assert.equal((await checkHostKey([f], 'beta', 22, ec.type, ec.blob)).status, 'ok');
    assert.equal((await checkHostKey([f], 'alpha', 22, ed2.type, ed2.blob)).status, 'changed');
    assert.equal((await checkHostKey([f], 'gamma', 22, ed.type, ed.blob)).status, 'unknown');
  });

  it('ssh-keygen -F finds what appendKnownHost wrote (plain and [host]:port)', async () => {
    const f = join(dir, 'sub', 'known_hosts'); // directory created on demand
    const line = await appendKnownHost(f, '127.0.0.1', 2222, ed.type, ed.blob);
    assert.equal(line, `[127.0.0.1]:2222 ${ed.type} ${ed.b64}`);
    await appendKnownHost(f, 'example', 22, 'rsa-sha2-256', rsa.blob); // stored as ssh-rsa
    assert.equal(((await stat(f)).mode & 0o777).toString(8), '600');
    const found = await run('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', f]);
    assert.match(found.stdout, /ssh-ed25519/);
    assert.match((await run('ssh-keygen', ['-F', 'example', '-f', f])).stdout, /example ssh-rsa /);
    assert.equal((await checkHostKey([f], '127.0.0.1', 2222, ed.type, ed.blob)).status, 'ok');
  });

  it('@revoked refuses the key like a change; @cert-authority is ignored', async () => {
    const f = await file('markers', [
      `@cert-authority *.example ${ed2.type} ${ed2.b64}`,
      `@revoked * ${ec.type} ${ec.b64}`,
      `alpha ${ec.type} ${ec.b64}`,
      `host.example ${ed.type} ${ed.b64}`,
    ]);
    const revoked = await checkHostKey([f], 'alpha', 22, ec.type, ec.blob);
    assert.equal(revoked.status, 'changed');
    assert.equal(revoked.revoked, true);
    // The CA key is not a host key: presenting it is "unknown", not "ok".
    assert.equal((await checkHostKey([f], 'other.example', 22, ed2.type, ed2.blob)).status, 'unknown');
    assert.equal((await checkHostKey([f], 'host.example', 22, ed.type, ed.blob)).status, 'ok');
  });

  it('wildcards and negation in host patterns', () => {
    assert.equal(hostFieldMatches('*.example.com', 'a.example.com'), true);
    assert.equal(hostFieldMatches('*.example.com,!bad.example.com', 'bad.example.com'), false);
    assert.equal(hostFieldMatches('host?', 'host1'), true);
    assert.equal(hostFieldMatches('[h]:2222', '[h]:2222'), true);
    assert.equal(hostFieldMatches('h', '[h]:2222'), false);
  });

  it('missing files are skipped; several files are all read', async () => {
    const f = await file('second', [`alpha ${ed.type} ${ed.b64}`]);
    assert.equal((await checkHostKey([join(dir, 'nope'), f], 'alpha', 22, ed.type, ed.blob)).status, 'ok');
    assert.equal((await checkHostKey([join(dir, 'nope')], 'alpha', 22, ed.type, ed.blob)).status, 'unknown');
  });

  it('suggests the line to add', async () => {
    const r = await checkHostKey([], '::1', 2200, ed.type, ed.blob);
    assert.equal(r.line, `[::1]:2200 ${ed.type} ${ed.b64}`);
  });
});
