import path from 'node:path';
import { AzsError, quoted } from '../errors.js';

/**
 * Every kind of backup location, the registry of targets: the target conformance suite runs once
 * per kind listed here, so a new target is tested by adding it.
 */
export const TARGET_KINDS = ['local', 'smb', 'blob'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

/** Where a backup location lives: a local (or mounted) folder, a folder on an SMB share, or a prefix in a blob container. */
export type ShareLocation =
  | { kind: 'local'; path: string }
  | BlobLocation
  | {
      kind: 'smb';
      server: string;
      port: number;
      share: string;
      /** '' for the share root, else 'a/b' (always '/'-separated, no leading or trailing slash). */
      folder: string;
      /** \\server\share\folder, or smb://server:port/share/folder when the port is not 445. */
      display: string;
    };

export interface BlobLocation {
  kind: 'blob';
  /** The account's blob endpoint: https://acct.blob.core.windows.net, or http://127.0.0.1:10000/devstoreaccount1 (path style). */
  accountUrl: string;
  accountName: string;
  container: string;
  /** '' or 'a/b' (no leading or trailing slash). */
  prefix: string;
  host: string;
  port: number;
  /** The URL as given, normalised, never with a query. */
  display: string;
}

export const DEFAULT_SMB_PORT = 445;

/** PATH_MAX less the terminating NUL: no path longer than this opens on Linux. */
const MAX_PATH_BYTES = 4095;

const ACCEPTED_FORMS =
  'Give a UNC path (\\\\server\\share\\folder), an SMB URL (smb://server[:port]/share/folder), a blob container URL ' +
  '(https://account.blob.core.windows.net/container[/prefix]) or an absolute local folder (/mnt/backups).';

// Characters Windows refuses in share and file names; smbclient's command parser also splits on ';'.
const BAD_NAME_CHARS = /[\\/:*?"<>|;\x00-\x1f]/;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?$/;
const IPV6_IN_BRACKETS = /^\[[0-9A-Fa-f:.]+\]$/;

function invalid(input: string, why: string): AzsError {
  // smb://user:password@server/...: the password is refused, and not repeated in the refusal.
  // A blob URL's query may be a SAS token, and its user part a key: neither is repeated either.
  let shown = input.replace(/^((?:smb|https?):\/\/)[^/]*@/i, '$1…@');
  if (/^\s*https?:/i.test(shown)) shown = shown.replace(/[?#][\s\S]*$/, '?…');
  return new AzsError(`The backup path '${quoted(shown)}' is not valid: ${why}.`, {
    errorId: 'InvalidSharePath',
    category: 'InvalidArgument',
    targetObject: quoted(shown, 1000),
    recommendedAction: ACCEPTED_FORMS,
  });
}

/** Checks one share-relative folder segment list and joins it as 'a/b'. */
function folderFrom(input: string, segments: string[]): string {
  const kept = segments.filter((s) => s !== '');
  for (const s of kept) {
    if (s === '..' || s === '.') throw invalid(input, `'${s}' segments are not allowed`);
    if (BAD_NAME_CHARS.test(s)) throw invalid(input, `the folder name '${s}' contains a character a share cannot hold`);
  }
  return kept.join('/');
}

function checkShareName(input: string, share: string | undefined): string {
  if (share === undefined || share === '') throw invalid(input, 'the share name is missing');
  if (BAD_NAME_CHARS.test(share) || share === '.' || share === '..') {
    throw invalid(input, `the share name '${share}' contains a character a share name cannot hold`);
  }
  return share;
}

function checkServer(input: string, server: string | undefined): string {
  if (server === undefined || server === '') throw invalid(input, 'the server name is missing');
  if (!HOST_NAME.test(server) && !IPV6_IN_BRACKETS.test(server)) {
    throw invalid(input, `'${server}' is not a valid server name or address`);
  }
  return server;
}

function display(server: string, port: number, share: string, folder: string): string {
  if (port === DEFAULT_SMB_PORT) {
    return `\\\\${server}\\${share}${folder === '' ? '' : '\\' + folder.split('/').join('\\')}`;
  }
  const enc = (s: string) => encodeURIComponent(s);
  return `smb://${server}:${port}/${enc(share)}${folder === '' ? '' : '/' + folder.split('/').map(enc).join('/')}`;
}

function parseUnc(input: string): ShareLocation {
  // Both \\server\share and //server/share (what a POSIX shell user types) are UNC paths.
  const parts = input.slice(2).split(/[\\/]/);
  const server = checkServer(input, parts[0]);
  const share = checkShareName(input, parts[1]);
  const folder = folderFrom(input, parts.slice(2));
  return { kind: 'smb', server, port: DEFAULT_SMB_PORT, share, folder, display: display(server, DEFAULT_SMB_PORT, share, folder) };
}

function parseSmbUrl(input: string): ShareLocation {
  const rest = input.slice('smb://'.length);
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const pathPart = slash === -1 ? '' : rest.slice(slash + 1);
  if (authority.includes('@')) {
    throw invalid(input, 'user names and passwords do not belong in the path; pass them as the credential');
  }
  if (/[?#]/.test(pathPart)) throw invalid(input, 'queries and fragments are not allowed');
  const m = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(authority);
  const server = checkServer(input, m?.[1]);
  let port = DEFAULT_SMB_PORT;
  if (m?.[2] !== undefined) {
    if (!/^\d{1,5}$/.test(m[2]) || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw invalid(input, `the port '${m[2]}' is not a number from 1 to 65535`);
    }
    port = Number(m[2]);
  }
  let segments: string[];
  try {
    segments = pathPart.split('/').map((s) => decodeURIComponent(s));
  } catch {
    throw invalid(input, 'it contains a malformed %-escape');
  }
  const share = checkShareName(input, segments[0]);
  const folder = folderFrom(input, segments.slice(1));
  return { kind: 'smb', server, port, share, folder, display: display(server, port, share, folder) };
}

// Container names: 3-63 of lower-case letters, digits and single dashes, starting and ending with a letter or digit.
const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/;
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;

/**
 * https://<account>.blob.<endpoint suffix>/<container>[/<prefix>] (Azure, Azure Stack Hub), or
 * path style, where the account is the first segment: http://127.0.0.1:10000/<account>/<container>
 * (Azurite, or any endpoint given by address).
 */
function parseBlobUrl(input: string): ShareLocation {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw invalid(input, 'it is not a valid URL');
  }
  if (url.username || url.password)
    throw invalid(input, 'user names and keys do not belong in the path; pass -StorageAccountKey or -SasToken');
  if (url.search || url.hash || input.includes('?')) {
    throw invalid(
      input,
      'a query (such as a SAS token) does not belong in the path, where other users and the shell history can read it; pass it with ' +
        '-SasToken',
    );
  }
  const host = url.hostname;
  const ipOrLocal = /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.startsWith('[') || host === 'localhost';
  let segments: string[];
  try {
    segments = url.pathname
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
  } catch {
    throw invalid(input, 'it contains a malformed %-escape');
  }
  const accountName = ipOrLocal ? segments.shift() : host.split('.')[0];
  if (!accountName || !ACCOUNT_NAME.test(accountName)) {
    throw invalid(
      input,
      ipOrLocal ? 'the storage account name is missing after the address' : `'${host}' does not start with a storage account name`,
    );
  }
  const container = segments.shift();
  if (container === undefined) throw invalid(input, 'the container name is missing');
  if (!CONTAINER_NAME.test(container))
    throw invalid(input, `'${container}' is not a valid container name (3-63 lower-case letters, digits and dashes)`);
  const prefix = folderFrom(input, segments);
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  const accountUrl = `${url.protocol}//${url.host}${ipOrLocal ? `/${accountName}` : ''}`;
  const enc = (s: string) => encodeURIComponent(s);
  const display = `${accountUrl}/${container}${prefix === '' ? '' : '/' + prefix.split('/').map(enc).join('/')}`;
  return { kind: 'blob', accountUrl, accountName, container, prefix, host, port, display };
}

function parseLocal(input: string): ShareLocation {
  if (!path.posix.isAbsolute(input)) throw invalid(input, 'it is neither a share path nor an absolute folder');
  if (/[\x00-\x1f\x7f]/.test(input)) throw invalid(input, 'it contains a control character (a newline, a tab, ...)');
  if (input.split('/').some((s) => s === '..')) throw invalid(input, "'..' segments are not allowed");
  const normal = path.posix.normalize(input);
  return { kind: 'local', path: normal.length > 1 ? normal.replace(/\/+$/, '') : normal };
}

/** Whether a Path names a blob container (https:// or http://), the one kind a storage account key or SAS token reaches. */
export function isBlobPath(input: string): boolean {
  return /^https?:\/\//i.test(input.trim());
}

/**
 * Parses the Path an operator gives: \\server\share\folder (port 445), smb://server[:port]/share/folder,
 * or an absolute local folder. Anything else is an InvalidSharePath usage error (exit 2).
 */
export function parseShareLocation(input: string): ShareLocation {
  const p = input.trim();
  if (p === '') throw invalid(input, 'it is empty');
  // Longer than any path Linux opens (PATH_MAX): a paste gone wrong, never a share.
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) throw invalid(input, `it is too long (more than ${MAX_PATH_BYTES} bytes)`);
  if (p.startsWith('\\\\') || p.startsWith('//')) return parseUnc(p);
  if (/^smb:\/\//i.test(p)) return parseSmbUrl('smb://' + p.slice(6));
  if (/^https?:\/\//i.test(p)) return parseBlobUrl(p);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p)) throw invalid(input, 'only smb://, https:// and http:// URLs are supported');
  return parseLocal(p);
}

/** What -UserName takes at most (its ValidateLength): longer is a paste gone wrong, never an account. */
export const MAX_USER_NAME_CHARS = 256;

/** `DOMAIN\user`, `user@domain` or plain `user`. */
export function parseUserName(userName: string): { domain?: string; user: string } {
  const bad = (why: string) =>
    new AzsError(`The user name '${userName}' is not valid: ${why}.`, {
      errorId: 'InvalidUserName',
      category: 'InvalidArgument',
      targetObject: userName,
      recommendedAction: 'Give the account as DOMAIN\\user, user@domain or user.',
    });
  const u = userName.trim();
  if (u === '') throw bad('it is empty');
  if (/[\x00-\x1f]/.test(u)) throw bad('it contains control characters');
  // -UserName is bounded by its manifest (ValidateLength); a -Credential's user name is not.
  if (u.length > MAX_USER_NAME_CHARS) throw bad(`it is longer than ${MAX_USER_NAME_CHARS} characters`);
  const backslash = u.split('\\');
  if (backslash.length > 2) throw bad('it contains more than one backslash');
  if (backslash.length === 2) {
    const [domain, user] = backslash as [string, string];
    if (domain === '' || user === '') throw bad('the domain or the user part is empty');
    if (user.includes('@')) throw bad("it mixes 'DOMAIN\\user' and 'user@domain'");
    // '.\user' means "this machine" in Windows: no domain.
    return domain === '.' ? { user } : { domain, user };
  }
  const at = u.split('@');
  if (at.length > 2) throw bad("it contains more than one '@'");
  if (at.length === 2) {
    const [user, domain] = at as [string, string];
    if (domain === '' || user === '') throw bad('the domain or the user part is empty');
    return { domain, user };
  }
  return { user: u };
}
