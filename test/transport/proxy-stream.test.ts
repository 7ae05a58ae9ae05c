import assert from 'node:assert/strict';
import { once } from 'node:events';
import { ProxyStream } from '../../src/transport/proxy-stream.js';

describe('transport/proxy-stream: a ProxyCommand as a socket', () => {
  it('carries bytes both ways through the command, and closes when it exits', async () => {
    const s = new ProxyStream('cat');
    const got: Buffer[] = [];
    s.on('data', (b: Buffer) => got.push(b));
    s.write(Buffer.from('hello '));
    s.end(Buffer.from('world'));
    await once(s, 'close');
    assert.equal(Buffer.concat(got).toString(), 'hello world');
  });

  it('a command that fails says why, with its last stderr line', async () => {
    const s = new ProxyStream(`sh -c 'echo "no route to gw" >&2; exit 7'`);
    s.resume();
    await once(s, 'close');
    assert.equal(s.failure(), 'no route to gw (exit 7)');
  });

  it('destroying it ends the command', async () => {
    const s = new ProxyStream('sleep 30');
    s.resume();
    const t0 = Date.now();
    s.destroy();
    await once(s, 'close');
    assert.ok(Date.now() - t0 < 1000);
  });
});
