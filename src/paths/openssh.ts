/**
 * `--via openssh`: blocks are piped into the remote helper over sessions of the local OpenSSH
 * client, multiplexed over ControlMaster connections, instead of ssh2 channels. Same helper,
 * same protocol, same journal: either path resumes the other's run.
 *
 * Why: ssh2 frames every 32 KiB packet in JavaScript on the event loop, which made node the
 * bottleneck on fast links; the OpenSSH master takes the bytes from a pipe and encrypts them in C.
 *
 * Connections: the ssh2 pool keeps one (helper install, probe, housekeeping, the flusher of
 * deferred writes, `--skip-identical` hashing and a re-sync's first blocks: see deferredPath),
 * the other `--connections − 1` are masters, each carrying `--channels` sessions. So
 * `--connections` still bounds the run's TCP connections.
 */
import { RemoteSource } from '../remote/remote-source.js';
import { RemoteTarget, zeroOptions } from '../remote/remote-target.js';
import type { Endpoint } from '../transport/endpoint.js';
import { MuxSessions } from '../transport/mux-sessions.js';
import { SpreadChannels } from '../transport/spread-channels.js';
import { removeLeftovers } from '../transport/local-process.js';
import { muxDirBase, muxDirPrefix, OpenSshMux } from '../transport/openssh-mux.js';
import type { DataPath, EarlyStart, PathContext, PreparedPath } from './types.js';

/** A round trip this long or longer is a long link (a LAN answers in well under 1 ms). */
const LONG_LINK_RTT_MS = 10;

/** The masters, all started at once, maybe while the ssh2 connection is still being set up. */
class MastersStarting implements EarlyStart {
  readonly result: Promise<OpenSshMux[] | Error>;
  private adopted = false;
  /** Ends masters still connecting when they are discarded (no waiting for a host that does not answer). */
  private readonly abandon = new AbortController();

  constructor(endpoint: Endpoint, o: MasterOptions) {
    const signal = o.signal ? AbortSignal.any([o.signal, this.abandon.signal]) : this.abandon.signal;
    this.result = startMasters(endpoint, { ...o, signal }).then(
      (muxes) => muxes,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
  }

  async adopt(): Promise<OpenSshMux[]> {
    const r = await this.result;
    if (r instanceof Error) throw r;
    this.adopted = true;
    return r;
  }

  /** Stop the masters unless adopted (then the prepared path stops them). Idempotent. */
  async discard(): Promise<void> {
    if (this.adopted) return;
    this.abandon.abort(new Error('discarded'));
    const r = await this.result;
    if (!(r instanceof Error)) await Promise.all(r.map((m) => m.stop()));
  }
}

interface MasterOptions {
  masters: number;
  jobId: string;
  reconnectTimeoutMs: number;
  warn(m: string): void;
  signal?: AbortSignal;
}

async function startMasters(endpoint: Endpoint, o: MasterOptions): Promise<OpenSshMux[]> {
  const started = await Promise.allSettled(
    Array.from({ length: o.masters }, (_, i) => {
      // Several addresses (`host a,b`): the ssh2 connection takes the first, the masters the next ones.
      const hosts = endpoint.hosts.map((_h, k) => endpoint.hosts[(i + 1 + k) % endpoint.hosts.length]!);
      return OpenSshMux.start({ ...endpoint, hosts }, { reconnectTimeoutMs: o.reconnectTimeoutMs, jobId: o.jobId, onWarning: o.warn, purpose: 'the blocks', signal: o.signal });
    }),
  );
  const up = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(up.map((m) => m.stop()));
    throw failed.reason;
  }
  return up;
}

export const opensshPath: DataPath = {
  name: 'openssh',
  refusals(q) {
    const why: string[] = [];
    if (q.connections < 2) why.push('--via openssh needs --connections 2 or more: one connection keeps the control channel, the others carry the blocks');
    if (!q.ssh) why.push('the OpenSSH client (ssh) not found on PATH: install the openssh-client package, or use --via stream');
    return why;
  },
  poolConnections: () => 1,
  // A killed run's masters end by themselves (their stdin from ddt is gone); their socket dirs stay.
  sweep: (jobId) => removeLeftovers(muxDirBase(), muxDirPrefix(jobId)),
  begin: (endpoint, o) => new MastersStarting(endpoint, { ...o, masters: o.connections - 1 }),
  sinkWorkers: (q) => (q.connections - 1) * q.channels,
  async prepare(ctx: PathContext): Promise<PreparedPath> {
    const s = ctx.session!;
    const masters = ctx.query.connections - 1;
    // (sinkWorkers says the same, for a sink that opens at its first write)
    const starting = ctx.early instanceof MastersStarting ? ctx.early : new MastersStarting(s.endpoint, { masters, jobId: ctx.jobId, reconnectTimeoutMs: ctx.reconnectTimeoutMs, warn: ctx.warn, signal: ctx.signal });
    // OpenSSH's MaxSessions (10 by default) counts the master's own session too: refusals shrink the share.
    const sessions = new MuxSessions(await starting.adopt(), ctx.query.channels, 1, ctx.warn);
    const workers = masters * ctx.query.channels;
    const spread = new SpreadChannels([sessions, s.pool], [Infinity, 0]);
    return {
      name: 'openssh',
      record: { name: 'openssh' },
      describe: [`via openssh: blocks piped through ${masters} OpenSSH connection(s) × ${ctx.query.channels} session(s) into the helper's dd, flushes shared on the ssh2 connection`],
      takesParts: true,
      // On a long link one connection's send buffer caps what it moves per round trip: the
      // ssh2 connection carries blocks too, all but two of its sessions (the target's lock and
      // the flusher of deferred writes keep theirs). On a short one the masters' C encryption
      // is worth more than a second connection, node's event loop stays free, and the ssh2
      // connection's flusher lets blocks share an fsync.
      async openSink(o = {}) {
        const long = o.rttMs !== undefined && o.rttMs >= LONG_LINK_RTT_MS;
        if (long) spread.setShare(1, Math.max(0, ctx.query.channels - 1));
        return RemoteTarget.open(s.helper, s.path, spread, { workers: workers + (long ? ctx.query.channels - 1 : 0), signal: ctx.signal, deferFlush: true, framed: s.probe.perl, ...zeroOptions(s.probe, ctx.query.zeros) });
      },
      openSource: () => RemoteSource.open(s.helper, s.path, sessions, { workers, signal: ctx.signal }),
      close: () => sessions.stop(),
    };
  },
};
