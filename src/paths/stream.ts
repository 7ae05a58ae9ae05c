/**
 * `--via stream`: each block is piped over a long-lived exec channel of the ssh2 connections
 * straight into the remote helper's dd (send), or read by it and piped back (pull). No local
 * `ssh` and no space on the remote host needed.
 */
import { RemoteSource } from '../remote/remote-source.js';
import { RemoteTarget, zeroOptions } from '../remote/remote-target.js';
import type { DataPath, PathContext, PreparedPath } from './types.js';

export const streamPath: DataPath = {
  name: 'stream',
  refusals: () => [],
  poolConnections: (connections) => connections,
  async prepare(ctx: PathContext): Promise<PreparedPath> {
    const s = ctx.session!;
    const workers = ctx.query.connections * ctx.query.channels;
    return {
      name: 'stream',
      record: { name: 'stream' },
      describe: [`via stream: blocks piped over ssh2 exec channels (${ctx.query.connections} connection(s) × ${ctx.query.channels}) into the helper's dd`],
      takesParts: true,
      openSink: () => RemoteTarget.open(s.helper, s.path, s.pool, { workers, signal: ctx.signal, framed: s.probe.perl, ...zeroOptions(s.probe, ctx.query.zeros) }),
      openSource: () => RemoteSource.open(s.helper, s.path, s.pool, { workers, signal: ctx.signal }),
      close: async () => {},
    };
  },
};
