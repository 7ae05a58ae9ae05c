/**
 * A session multiplexed over an OpenSSH ControlMaster, shaped like the part of ssh2's
 * ClientChannel that a helper worker uses (data/end/close/error events, `stderr`, `write`,
 * `end`). The client process hands its stdin/stdout to the master (OpenSSH passes the file
 * descriptors over the control socket), so block bytes go from ddt through one pipe into the
 * master, which encrypts them in C: several times cheaper per byte than ssh2's JS packet layer.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';

const CLOSE_WAIT_MS = 5_000;

export class MuxChannel extends EventEmitter {
  readonly stderr: Readable;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<void>;
  private gone = false;

  /** `ssh CLIENTARGS HOST -- COMMAND`: COMMAND is one already-quoted remote shell line. */
  constructor(ssh: string, clientArgs: string[], host: string, command: string) {
    super();
    this.child = spawn(ssh, [...clientArgs, host, '--', command], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.stderr = this.child.stderr;
    this.exited = new Promise((resolve) => {
      this.child.once('close', () => {
        this.gone = true;
        resolve();
        this.emit('close');
      });
    });
    this.child.once('error', (err) => this.emit('error', err));
    this.child.stdin.on('error', (err) => this.emit('error', err));
    this.child.stdout.on('data', (d) => this.emit('data', d));
    this.child.stdout.once('end', () => this.emit('end'));
  }

  /** Resolves once the client process has exited and its output is drained. */
  get closed(): Promise<void> {
    return this.exited;
  }

  setEncoding(enc: BufferEncoding): this {
    this.child.stdout.setEncoding(enc);
    return this;
  }

  /** Backpressure for a reader: the pipe fills, the master's channel window closes. */
  pause(): this {
    this.child.stdout.pause();
    return this;
  }

  resume(): this {
    this.child.stdout.resume();
    return this;
  }

  isPaused(): boolean {
    return this.child.stdout.isPaused();
  }

  write(buf: Buffer | string, cb?: (err?: Error | null) => void): boolean {
    return this.child.stdin.write(buf, cb);
  }

  end(last?: string): void {
    if (last === undefined) this.child.stdin.end();
    else this.child.stdin.end(last);
  }

  /** EOF to the remote command, then wait for the session to end (killed after a grace time). */
  async close(): Promise<void> {
    if (this.gone) return;
    if (!this.child.stdin.writableEnded) this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), CLOSE_WAIT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /** End the session now: the client exits, the master closes the channel, the remote sees EOF. */
  destroy(): void {
    if (this.gone) return;
    this.child.stdin.destroy();
    this.child.kill('SIGTERM');
  }
}
