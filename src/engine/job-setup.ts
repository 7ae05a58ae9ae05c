/**
 * What a run of a job starts from, the same for a new job (the command line) and a resume (the
 * journal, plus this run's overrides): its ends, settings, the path asked for or recorded.
 */
import type { ChecksumAlgo } from '../checksum/types.js';
import { DdtError } from '../errors.js';
import { defaultJournalPath, JournalWriter, type JournalState } from '../journal/journal.js';
import { newJobId, type EndRecord, type JobCommand, type JobHeader, type JobOptions, type PathName, type PathRecord, type RemoteRecord } from '../journal/records.js';
import { validateBlockSize } from '../plan/block-plan.js';
import { validateRemotePath } from '../remote/quote.js';
import { checkEndpointFiles, resolveEndpoint, resolveRoute, type Endpoint, type EndpointOptions } from '../transport/endpoint.js';
import { parseRemoteSpec } from '../transport/target-spec.js';

/** How to reach the remote end of a new job. */
export interface SshRequest extends EndpointOptions {
  acceptNewHostKey: boolean;
  /** Run the remote helper through `sudo -n`. */
  sudo?: boolean;
}

/** A new job, as the command line gives it. */
export interface NewJob {
  kind: 'new';
  command: JobCommand;
  /** Local paths, or `[user@]host:path` for the remote end. */
  source: string;
  target: string;
  blockSize: number;
  checksum: ChecksumAlgo | 'auto';
  options: JobOptions;
  /** `--via`, or `rsync` for `--engine rsync`. */
  via?: PathName;
  remoteDir?: string;
  remoteReserve?: string;
  localDir?: string;
  ssh: SshRequest;
  journal?: string;
  yes: boolean;
  dryRun: boolean;
}

/** What a resume may change for its own run; the journal keeps the job as it started. */
export interface ResumeOverrides {
  connections?: number;
  channels?: number;
  identity?: string[];
  knownHosts?: string;
  /** Where the recorded jump hosts are resolved [as recorded, else ~/.ssh/config]. */
  sshConfig?: string;
  bwlimit?: string;
  reconnectTimeoutMs?: number;
  via?: PathName;
  /** Re-hash the blocks proven earlier before trusting them. */
  reverify?: boolean;
}

export interface ResumeJob {
  kind: 'resume';
  journal: string;
  state: JournalState;
  overrides: ResumeOverrides;
}

export type JobRequest = NewJob | ResumeJob;

/** One end as this run sees it. */
export interface EndSetup {
  path: string;
  endpoint?: Endpoint;
  /** Recorded by an earlier run (resume). */
  record?: EndRecord;
}

export interface JobSetup {
  command: JobCommand;
  jobId: string;
  journalPath: string;
  source: EndSetup;
  target: EndSetup;
  blockSize: number;
  checksum: ChecksumAlgo | 'auto';
  /** This run's settings (a resume's overrides applied). */
  options: JobOptions;
  asked?: PathName;
  /** Resume: the path the job began with. */
  recordedPath?: PathName;
  /** Where staging paths stage (`--remote-dir`, `--remote-reserve`, `--local-dir`, or as recorded). */
  staging: { remoteDir?: string; remoteReserve?: string; localDir?: string };
  acceptNewHostKey: boolean;
  sudo: boolean;
  yes: boolean;
  dryRun: boolean;
  /** Resume: the journal as the last run left it. */
  previous?: JournalState;
  reverify: boolean;
}

export async function setUp(req: JobRequest): Promise<JobSetup> {
  return req.kind === 'new' ? setUpNew(req) : setUpResume(req);
}

async function setUpNew(req: NewJob): Promise<JobSetup> {
  validateBlockSize(req.blockSize);
  const journalPath = req.journal ?? defaultJournalPath();
  // Before connecting to anything: a journal that cannot be created fails here, not after.
  JournalWriter.assertCreatable(journalPath);
  const end = async (spec: string, remote: boolean, what: string): Promise<EndSetup> => {
    if (!remote) return { path: spec };
    const r = parseRemoteSpec(spec);
    return { path: validateRemotePath(r.path, what), endpoint: await resolveEndpoint(r, req.ssh) };
  };
  const askedStaging = req.via === undefined && (req.remoteDir !== undefined || req.remoteReserve !== undefined);
  if (req.via !== undefined && req.via !== 'sftp' && req.via !== 'rsync' && (req.remoteDir !== undefined || req.remoteReserve !== undefined)) {
    throw new DdtError('BAD_OPTION', `--remote-dir and --remote-reserve are for staging (--via sftp, --engine rsync), not for --via ${req.via}: drop them or the --via`);
  }
  return {
    command: req.command,
    jobId: newJobId(),
    journalPath,
    source: await end(req.source, req.command === 'pull', 'remote source'),
    target: await end(req.target, req.command === 'send', 'remote target'),
    blockSize: req.blockSize,
    checksum: req.checksum,
    options: req.options,
    // --remote-dir / --remote-reserve without --via ask for staging: sftp.
    asked: req.via ?? (askedStaging ? 'sftp' : undefined),
    staging: { remoteDir: req.remoteDir, remoteReserve: req.remoteReserve, localDir: req.localDir },
    acceptNewHostKey: req.ssh.acceptNewHostKey,
    sudo: req.ssh.sudo === true,
    yes: req.yes,
    dryRun: req.dryRun,
    reverify: false,
  };
}

async function setUpResume(req: ResumeJob): Promise<JobSetup> {
  const h = req.state.header;
  const o = req.overrides;
  const end = (rec: EndRecord): EndSetup => {
    if (!rec.remote) return { path: rec.path, record: rec };
    return { path: rec.path, record: rec, endpoint: endpointOf(rec.remote, o) };
  };
  return {
    command: h.command,
    jobId: h.jobId,
    journalPath: req.journal,
    source: end(h.source),
    target: end(h.target),
    blockSize: h.blockSize,
    checksum: h.checksum,
    options: {
      ...h.options,
      connections: o.connections ?? h.options.connections,
      channels: o.channels ?? h.options.channels,
      reconnectTimeoutMs: o.reconnectTimeoutMs ?? h.options.reconnectTimeoutMs,
      ...(o.bwlimit !== undefined && { bwlimit: o.bwlimit }),
    },
    asked: o.via,
    recordedPath: h.path.name,
    staging: h.path.name === 'sftp' || h.path.name === 'rsync' ? { ...h.path } : {},
    acceptNewHostKey: false,
    sudo: (h.source.remote ?? h.target.remote)?.sudo === true,
    // The job was confirmed when it started.
    yes: true,
    dryRun: false,
    previous: req.state,
    reverify: o.reverify === true,
  };
}

/** The journal's first line for a new job. */
export function newHeader(s: JobSetup, o: { source: EndRecord; target: EndRecord; checksum: ChecksumAlgo; path: PathRecord; blocks: number }): JobHeader {
  return {
    type: 'job',
    version: 2,
    jobId: s.jobId,
    command: s.command,
    options: s.options,
    path: o.path,
    source: o.source,
    target: o.target,
    blockSize: s.blockSize,
    blocks: o.blocks,
    checksum: o.checksum,
    startedAt: new Date().toISOString(),
  };
}

/** The journal's record of how to reach a remote end. */
export function remoteRecordOf(e: Endpoint, sudo: boolean): RemoteRecord {
  return {
    hosts: e.hosts,
    port: e.port,
    user: e.user,
    identityFiles: e.identityFiles,
    ...(e.knownHostsFile !== undefined && { knownHosts: e.knownHostsFile }),
    ...(e.userKnownHostsFiles !== undefined && { userKnownHosts: e.userKnownHostsFiles }),
    ...(e.identitiesOnly !== undefined && { identitiesOnly: e.identitiesOnly }),
    ...(e.connectTimeoutMs !== undefined && { connectTimeoutMs: e.connectTimeoutMs }),
    ...(e.serverAliveIntervalMs !== undefined && { serverAliveIntervalMs: e.serverAliveIntervalMs }),
    ...(e.jump !== undefined && { jump: e.jump }),
    // A jump host's own ProxyCommand comes from the ssh config again; only the target's is recorded.
    ...(e.jump === undefined && e.proxyCommand !== undefined && { proxyCommand: e.proxyCommand }),
    ...(e.sshConfig !== undefined && { sshConfig: e.sshConfig }),
    ...(sudo && { sudo }),
  };
}

/** How a resume (or a clean) reaches the remote end: as recorded, this run's overrides applied, the jump hosts resolved again. */
export function endpointOf(r: RemoteRecord, o: Pick<ResumeOverrides, 'identity' | 'knownHosts' | 'sshConfig'>): Endpoint {
  const e: Endpoint = { hosts: r.hosts, port: r.port, user: r.user, identityFiles: o.identity?.length ? o.identity : r.identityFiles };
  const knownHosts = o.knownHosts ?? r.knownHosts;
  if (knownHosts !== undefined) e.knownHostsFile = knownHosts;
  else if (r.userKnownHosts) e.userKnownHostsFiles = r.userKnownHosts;
  if (r.identitiesOnly !== undefined) e.identitiesOnly = r.identitiesOnly;
  if (r.connectTimeoutMs !== undefined) e.connectTimeoutMs = r.connectTimeoutMs;
  if (r.serverAliveIntervalMs !== undefined) e.serverAliveIntervalMs = r.serverAliveIntervalMs;
  if (r.jump !== undefined) e.jump = r.jump;
  if (r.proxyCommand !== undefined) e.proxyCommand = r.proxyCommand;
  const sshConfig = o.sshConfig ?? r.sshConfig;
  if (sshConfig !== undefined) e.sshConfig = sshConfig;
  const routed = resolveRoute(e);
  checkEndpointFiles(routed);
  return routed;
}
