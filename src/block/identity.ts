/**
 * What identifies one end of a job (a device or an image file, local or remote) between runs,
 * so that a resume or a verify can refuse a different one. Recorded in the journal.
 */
export interface DeviceIdentity {
  kind: 'file' | 'block';
  size: number;
  /** file: inode, its filesystem's device number, mtime */
  ino?: string;
  dev?: string;
  mtimeMs?: number;
  /** block device: MAJ:MIN, and the serial/WWN where sysfs has one (a loop device: its backing file) */
  devno?: string;
  serial?: string;
  wwid?: string;
}

/**
 * How a source changed between runs, or undefined when it is the same one. A source may not
 * even be touched (mtime); a target is written by us, so `target` leaves mtime out.
 */
export function identityChange(recorded: DeviceIdentity, now: DeviceIdentity, o: { target?: boolean } = {}): string | undefined {
  if (recorded.kind !== now.kind) return `it was a ${recorded.kind}, now it is a ${now.kind}`;
  if (recorded.size !== now.size) return `its size changed from ${recorded.size} to ${now.size} bytes`;
  if (recorded.kind === 'file') {
    if (recorded.ino !== undefined && recorded.ino !== now.ino) return 'it is a different file (inode changed)';
    if (recorded.dev !== undefined && now.dev !== undefined && recorded.dev !== now.dev) return 'it is a file on another filesystem (device changed)';
    if (!o.target && recorded.mtimeMs !== undefined && recorded.mtimeMs !== now.mtimeMs) return 'it was modified since the run started (mtime changed)';
  } else {
    if (recorded.devno !== undefined && now.devno !== undefined && recorded.devno !== now.devno) return `it is another device (${recorded.devno} then, ${now.devno} now)`;
    if (recorded.serial && recorded.serial !== now.serial) return `its serial changed from ${recorded.serial} to ${now.serial ?? 'none'}`;
    if (recorded.wwid && recorded.wwid !== now.wwid) return `its wwid changed from ${recorded.wwid} to ${now.wwid ?? 'none'}`;
  }
  return undefined;
}

/** One line naming an identity, for messages. */
export function describeIdentity(id: DeviceIdentity): string {
  if (id.kind === 'block') return `block device ${id.devno ?? '?'}${id.serial ? ` serial ${id.serial}` : ''}, ${id.size} bytes`;
  return `file ${id.dev ?? '?'}:${id.ino ?? '?'}, ${id.size} bytes`;
}
