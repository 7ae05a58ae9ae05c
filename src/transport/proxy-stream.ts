/**
 * A ProxyCommand as a socket: `sh -c 'exec CMD'`, its stdout read and its stdin written as
 * one Duplex, which ssh2 takes as the connection's `sock`. The command runs in its own process
 * group, so a Ctrl-C at the terminal reaches ddt, which then ends the connection in order,
 * instead of killing the proxy under it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';

const STDERR_KEEP = 2048;

export class ProxyStream extends Duplex {
  private readonly child: ChildProcess;
  private stderr = '';
  private exitStatus: string | undefined;

  constructor(readonly command: string) {
    super();
    this.child = spawn('sh', ['-c', `exec ${command}`], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const { stdin, stdout, stderr } = this.child;
    stderr!.setEncoding('utf8').on('data', (t: string) => (this.stderr = (this.stderr + t).slice(-STDERR_KEEP)));
    stdout!.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) stdout!.pause();
    });
    stdout!.on('end', () => this.push(null));
    stdin!.on('error', (err) => this.destroy(err));
    this.child.once('error', (err) => this.destroy(err));
    this.child.once('exit', (code, signal) => {
      this.exitStatus = signal ? `killed by ${signal}` : `exit ${code}`;
      // Whatever it printed is in; the connection over it is over.
      setImmediate(() => this.destroy());
    });
  }

  /** Why the command ended, with the last line it wrote to stderr, for messages. */
  failure(): string | undefined {
    if (this.exitStatus === undefined) return undefined;
    const line = this.stderr.trim().split('\n').at(-1)?.trim();
    return line ? `${line} (${this.exitStatus})` : this.exitStatus;
  }

  override _read(): void {
    this.child.stdout!.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.child.stdin!.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin!.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.child.stdin!.destroy();
    this.child.stdout!.destroy();
    if (this.exitStatus === undefined) {
      try {
        this.child.kill('SIGTERM');
      } catch {
        /* already gone */
      }
    }
    cb(err);
  }
}
