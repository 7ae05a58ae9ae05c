/** What an SshPool is opened with, and what it keeps per connection. */
import type { Client } from 'ssh2';
import type { SessionBudget } from '../pool/session-budget.js';
import type { JumpHost } from './endpoint.js';
import type { ExecOptions } from './channels.js';
import type { Channel } from './ssh-close.js';
import type { SshAuthSettings } from './ssh-connect.js';

export interface SshPoolOptions extends SshAuthSettings {
  /** Addresses of the same machine; connection i goes to hosts[i % hosts.length]. */
  hosts: string[];
  port: number;
  user: string;
  connections: number;
  channelsPerConnection: number;
  /**
   * How long a connection may stay unreachable, from the moment it stopped moving data, before
   * its channels are given up; the keepalive interval and each attempt's timeout derive from it.
   */
  reconnectTimeoutMs?: number;
  /** Ends connection attempts (setup included) at once. */
  signal?: AbortSignal;
  /** The jump hosts on the way; each pool connection has its own (one TCP connection still). */
  hops?: JumpHost[];
  /** Run instead of the TCP connection to the first host of the way (`sh -c`). */
  proxyCommand?: string;
  /** The configured ServerAliveInterval; the reconnect timeout may shorten it. */
  serverAliveIntervalMs?: number;
}

export interface Conn {
  index: number;
  host: string;
  client?: Client;
  budget: SessionBudget;
  /** Given up (unreachable past the reconnect timeout while others carry on). */
  dead: boolean;
  channels: Set<Channel>;
  connecting?: Promise<void>;
  lostAt?: number;
}

/** What `SshPool.exec` takes beyond any channel source's options. */
export interface PoolExecOptions extends ExecOptions {
  /**
   * Told how the command ended. Attached as the exec is answered: a quick command's exit status
   * can come in the same read as that answer, and ssh2 emits it before a listener added once
   * `exec` has resolved exists, so such a listener would miss it.
   */
  onExit?: (code: number | null, signal?: string) => void;
}
