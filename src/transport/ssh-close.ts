/**
 * Ending ssh2 channels and connections so that the server has let go of them when the promise
 * resolves (a channel's MaxSessions slot is free only once its close is acknowledged), never
 * waiting longer than a few seconds on a server that does not answer.
 */
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';

const CLOSE_WAIT_MS = 5_000;

export type Channel = ClientChannel | SFTPWrapper;

function isExecChannel(ch: Channel): ch is ClientChannel {
  // ssh2's SFTP wrapper has close() too (of a file handle) and a stub stderr without resume().
  return typeof (ch as ClientChannel).close === 'function' && typeof (ch as ClientChannel).stderr?.resume === 'function';
}

/** Close a channel and wait until the server has acknowledged it. */
export async function closeChannel(c: Channel): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    c.once('close', () => resolve());
    setTimeout(resolve, CLOSE_WAIT_MS).unref();
  });
  try {
    if (isExecChannel(c)) {
      // ssh2 emits 'close' only after the read side ended: drain what nobody reads any more.
      c.stderr.resume();
      c.resume();
      c.close();
    } else c.end();
  } catch {
    /* already closing */
  }
  await closed;
}

/** End a connection in order; one that does not close in time is destroyed. */
export function endClient(client: Client): Promise<void> {
  return new Promise<void>((resolve) => {
    client.once('close', () => resolve());
    setTimeout(() => {
      client.destroy();
      resolve();
    }, CLOSE_WAIT_MS).unref();
    client.end();
  });
}
