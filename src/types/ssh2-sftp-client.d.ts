/**
 * The part of ssh2-sftp-client that ddt uses (the package ships no types). Its methods work on
 * whatever SFTP session `sftp` holds, which is how ddt hands it one of its own pool's sessions.
 */
declare module 'ssh2-sftp-client' {
  import type { SFTPWrapper } from 'ssh2';

  namespace SftpClient {
    /** An entry of `list`: `type` is `d`, `-`, `l` (the first letter of `ls -l`). */
    interface FileInfo {
      type: string;
      name: string;
      size: number;
      modifyTime: number;
    }
    interface FileStats {
      mode: number;
      size: number;
      isDirectory: boolean;
      isFile: boolean;
      isSymbolicLink: boolean;
    }
  }

  class SftpClient {
    constructor(name?: string, callbacks?: { error?: (err: Error) => void; end?: () => void; close?: () => void });
    sftp: SFTPWrapper | undefined;
    realPath(path: string): Promise<string>;
    exists(path: string): Promise<false | 'd' | '-' | 'l'>;
    lstat(path: string): Promise<SftpClient.FileStats>;
    list(path: string, filter?: (item: SftpClient.FileInfo) => boolean): Promise<SftpClient.FileInfo[]>;
    delete(path: string, notFoundOK?: boolean): Promise<string>;
    rmdir(path: string, recursive?: boolean): Promise<string>;
  }

  export = SftpClient;
}
