/**
 * Channels spread over several sources: the blocks of the OpenSSH path go over the masters'
 * sessions, and on a long link over the ssh2 connection too. One TCP connection moves at most
 * its send buffer per round trip (a few MiB): at 100 ms that is a fraction of a fast link, and
 * the ssh2 connection, idle but for housekeeping, is a second one at no cost.
 */
import { DdtError, isDdtError } from '../errors.js';
import type { ChannelSource, ExecChannel, ExecOptions } from './channels.js';

export class SpreadChannels implements ChannelSource {
  private readonly carrier = new Map<ExecChannel, number>();
  private readonly counts: number[];

  constructor(
    private readonly sources: ChannelSource[],
    /** How many channels each source may give this spread (it may give fewer). */
    private readonly shares: number[],
  ) {
    this.counts = sources.map(() => 0);
  }

  /** Let source `i` give up to `n` channels from now on. */
  setShare(i: number, n: number): void {
    this.shares[i] = n;
  }

  capacity(): number {
    return this.sources.reduce((n, s, i) => n + Math.min(this.shares[i]!, s.capacity()), 0);
  }

  connectionOf(ch: ExecChannel): number | undefined {
    const i = this.carrier.get(ch);
    return i === undefined ? undefined : this.sources[i]!.connectionOf(ch);
  }

  /** A channel of the least used source that has room (by its share); the last one tried may wait. */
  async exec(cmd: string, o: ExecOptions = {}): Promise<ExecChannel> {
    const order = this.sources
      .map((_, i) => i)
      .filter((i) => this.counts[i]! < Math.min(this.shares[i]!, this.sources[i]!.capacity()))
      .sort((a, b) => this.counts[a]! / this.shares[a]! - this.counts[b]! / this.shares[b]!);
    if (order.length === 0 && o.wait === false) throw new DdtError('SSH_NO_CHANNEL', 'every channel of the spread is busy');
    const tries = order.length ? order : [0];
    for (const [k, i] of tries.entries()) {
      const last = k === tries.length - 1;
      this.counts[i]!++;
      try {
        const ch = await this.sources[i]!.exec(cmd, { ...o, wait: last ? o.wait : false });
        this.carrier.set(ch, i);
        return ch;
      } catch (err) {
        this.counts[i]!--;
        if (last || !isDdtError(err, 'SSH_NO_CHANNEL')) throw err;
      }
    }
    throw new DdtError('SSH_NO_CHANNEL', 'no channel');
  }

  async release(ch: ExecChannel): Promise<void> {
    const i = this.carrier.get(ch);
    if (i === undefined) return;
    this.carrier.delete(ch);
    await this.sources[i]!.release(ch);
    this.counts[i]!--;
  }
}
