/**
 * Where remote helper processes run: an exec channel of the ssh2 pool, or a session of the
 * local OpenSSH client multiplexed over a ControlMaster. The remote layer sees only this.
 */

/** The part of a channel a helper worker uses; ssh2's ClientChannel and MuxChannel both have it. */
export interface ExecChannel {
  write(buf: Buffer | string, cb?: (err?: Error | null) => void): unknown;
  end(last?: string): unknown;
  setEncoding(enc: BufferEncoding): unknown;
  pause(): unknown;
  resume(): unknown;
  isPaused(): boolean;
  on(event: 'data', fn: (d: Buffer | string) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  readonly stderr: { on(event: 'data', fn: (b: Buffer) => void): unknown };
}

export interface ExecOptions {
  signal?: AbortSignal;
  /** false: fail with SSH_NO_CHANNEL instead of waiting when every slot is busy. */
  wait?: boolean;
  /**
   * Proves the remote command runs (a helper's no-op round trip). A source whose sessions can be
   * refused only after they started (an OpenSSH client exits) calls it before handing the channel
   * over, and learns the server's session limit from its failure.
   */
  ready?: (ch: ExecChannel) => Promise<void>;
}

export interface ChannelSource {
  exec(cmd: string, o?: ExecOptions): Promise<ExecChannel>;
  /** Close the channel and wait until its slot is free. */
  release(ch: ExecChannel): Promise<void>;
  /** Channels it can have open at once, as far as it knows now. */
  capacity(): number;
  /** The TCP connection (0-based) carrying a channel, for per-connection progress. */
  connectionOf(ch: ExecChannel): number | undefined;
}
