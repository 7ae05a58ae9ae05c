/**
 * The bounds every setting is held to, whether it comes from the command line or from a
 * journal: a journal is input too, and one crafted to ask for 100000 connections must be
 * refused exactly like the same option typed by hand.
 */
export const LIMITS = {
  connections: 64,
  channels: 64,
  retries: 100,
  /** The largest block: a block is the unit of retransmission, and 4 GiB is already a lot to redo. */
  blockSize: 4 * 1024 ** 3,
  /** 30 days: longer than any link outage worth waiting out. */
  reconnectTimeoutMs: 30 * 24 * 3600 * 1000,
  /** Blocks of one job: its plan and its journal state are held in memory, a few hundred bytes each. */
  blocks: 16 * 1024 * 1024,
  /** Addresses of one host (`host1,host2:path`). */
  hosts: 16,
  identityFiles: 16,
  /** A path or other string read from a journal or a remote host. */
  text: 4096,
} as const;
