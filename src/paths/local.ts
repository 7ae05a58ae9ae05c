/**
 * `ddt copy`: both ends on this host, nothing crosses a link. The job opens its local ends
 * itself (positioned reads of the source; positioned writes, fdatasync and an O_DIRECT
 * read-back of the target), so this path only takes part in the choice and the journal.
 */
import { notForThis, type DataPath, type PreparedPath } from './types.js';

export const localPath: DataPath = {
  name: 'local',
  refusals: (q) => (q.command === 'copy' ? [] : ['both ends are local only for copy']),
  poolConnections: () => 0,
  prepare: async (): Promise<PreparedPath> => ({
    name: 'local',
    record: { name: 'local' },
    describe: ['via local: positioned reads and writes on this host'],
    takesParts: false,
    openSink: notForThis('local'),
    openSource: notForThis('local'),
    close: async () => {},
  }),
};
