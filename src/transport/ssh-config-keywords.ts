/**
 * ssh config keywords that change where or how OpenSSH connects but that ddt does not carry
 * out. A run whose hosts set one is warned by name: a config that quietly means something else
 * to ddt than to `ssh` would send a disk somewhere the user did not expect.
 */
import SSHConfig from 'ssh-config';

type Computed = Record<string, string | string[]>;

const first = (v: string | string[]): string => (Array.isArray(v) ? (v[0] ?? '') : v).toLowerCase();

/**
 * Lower-case keyword → the values with which it changes nothing for ddt (absent: every value
 * counts). The spelling shown in the warning is the key's as written here.
 */
const UNSUPPORTED: Record<string, string[] | undefined> = {
  // where: another address, name or route than ddt resolves
  HostKeyAlias: undefined,
  CanonicalizeHostname: ['no'],
  CanonicalDomains: undefined,
  BindAddress: undefined,
  BindInterface: undefined,
  AddressFamily: ['any'],
  ProxyUseFdpass: ['no'],
  Tunnel: ['no'],
  RemoteCommand: ['none'],
  Include: undefined,
  // local side effects of connecting
  LocalCommand: undefined,
  PermitLocalCommand: ['no'],
  // ddt runs its own masters, with its own control sockets
  ControlMaster: ['no'],
  ControlPath: ['none'],
  ControlPersist: ['no'],
  // how: algorithms, host key sources and policies, other authentication
  KexAlgorithms: undefined,
  Ciphers: undefined,
  MACs: undefined,
  HostKeyAlgorithms: undefined,
  PubkeyAcceptedAlgorithms: undefined,
  PubkeyAcceptedKeyTypes: undefined,
  CASignatureAlgorithms: undefined,
  StrictHostKeyChecking: ['yes'],
  GlobalKnownHostsFile: undefined,
  KnownHostsCommand: undefined,
  VerifyHostKeyDNS: ['no'],
  CertificateFile: undefined,
  IdentityAgent: undefined,
  PKCS11Provider: ['none'],
  SecurityKeyProvider: ['internal'],
  PreferredAuthentications: undefined,
  PubkeyAuthentication: ['yes'],
  GSSAPIAuthentication: ['no'],
  HostbasedAuthentication: ['no'],
  ConnectionAttempts: ['1'],
  RekeyLimit: undefined,
};

const BY_LOWER = new Map(Object.entries(UNSUPPORTED).map(([k, harmless]) => [k.toLowerCase(), { name: k, harmless }]));

/** The keywords of a computed host config that ddt would ignore, as spelled in ssh_config(5). */
export function unsupportedKeywords(computed: Computed): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(computed)) {
    const k = BY_LOWER.get(key.toLowerCase());
    if (k && !k.harmless?.includes(first(value))) out.push(k.name);
  }
  return out;
}

type Line = { type: number; param?: string; value?: unknown; criteria?: Record<string, unknown>; config?: Line[] };

/**
 * ssh-config looks names up with `nslookup` when CanonicalizeHostname is on: reading a config
 * must not run anything. Renamed, the directive is inert but still reported.
 */
export function defuse(config: SSHConfig): void {
  const walk = (lines: Line[]) => {
    for (const line of lines) {
      if (line.param && /^CanonicalizeHostname$/i.test(line.param)) line.param = 'CanonicalizeHostname-inert';
      if (line.config) walk(line.config);
    }
  };
  walk(config as unknown as Line[]);
}

/** Inert names back to the keyword they stand for. */
export function undefuse(computed: Computed): Computed {
  const inert = Object.keys(computed).find((k) => /^canonicalizehostname-inert$/i.test(k));
  if (inert === undefined) return computed;
  const { [inert]: value, ...rest } = computed;
  return { ...rest, canonicalizehostname: value! };
}

/**
 * Whether `Match exec` blocks, which ddt never runs, could change this host's settings: the
 * config computed as if every `exec` succeeded differs from the one ddt uses.
 */
export function matchExecMatters(text: string, alias: string, used: Computed): boolean {
  if (!/^\s*match\b.*\bexec\b/im.test(text)) return false;
  const optimistic = SSHConfig.parse(text);
  defuse(optimistic);
  for (const line of optimistic as unknown as Line[]) if (line.criteria && 'exec' in line.criteria) delete line.criteria.exec;
  const other = undefuse(optimistic.compute({ Host: alias }, { ignoreCase: true, matchExec: false }));
  return JSON.stringify(sorted(other)) !== JSON.stringify(sorted(used));
}

function sorted(o: Computed): [string, string | string[]][] {
  return Object.entries(o).sort(([a], [b]) => a.localeCompare(b));
}
