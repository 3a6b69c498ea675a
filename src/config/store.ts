import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { AzsError, ExitCode, isAzsError } from '../errors.js';
import { writeFileWhole } from '../fs/durable-write.js';
import { isMissingFile, readFileBoundedSync } from '../io/bounded-read.js';
import { homeError, homeIsAFile, makeHome } from './home-folder.js';
import { openSecret, sealSecret } from '../crypto/secret-box.js';
import type { RoleDefinition } from '../providers/provider.js';
import { withLock } from './file-lock.js';
import type { AlertSinks } from '../alerts/sinks.js';

/**
 * The configuration under AZSBACKUP_HOME: where backups go, how they are encrypted, the schedule and
 * the role catalog. Written whole (durable-write.ts: a new file fsynced and renamed over the old)
 * under a lock, so concurrent writers cannot lose each other's changes and a crash leaves the old
 * file or the new one; read straight from the JSON file. (It was written through the conf package
 * until 2026-12: loading conf and its JSON schema validator, 420 KB of code, cost every backup
 * 20-30 ms of CPU for one small write.)
 *
 * Secrets (the share password, the symmetric key, database passwords) are sealed with AES-256-GCM
 * under a key kept in a separate owner-only file: a copied or leaked config.json reveals nothing.
 */

export type Sealed = { sealed: string };

/** A certificate new backups are encrypted for. */
export interface StoredCertificate {
  thumbprint: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  publicKeyPem: string;
  /**
   * The secret only the certificate's private key yields (crypto/certificate-authentication.ts),
   * derived once from the .pfx given to Set-BackupShare; it lets backups prove who made them.
   * Absent in configurations made without the .pfx: their backups cannot be authenticated.
   */
  authenticationSecret?: Sealed;
}

/**
 * Certificate mode: one or more certificates (an operations certificate and a break-glass one kept
 * in a safe, say). Every backup's data key is wrapped for each, so any one of them restores it.
 * Never empty; the first is the one the single-certificate fields of BackupLocation show.
 */
export interface CertificateEncryption {
  mode: 'Certificate';
  certificates: StoredCertificate[];
}

export interface KeyRecipient {
  mode: 'Key';
  keyId: string;
  key: Sealed;
}

export type EncryptionSettings = CertificateEncryption | KeyRecipient;

export interface StoredRole extends Omit<RoleDefinition, 'databasePassword'> {
  databasePassword?: Sealed;
}

export interface StoredConfig {
  /** A blob container is reached with a storage account key or a SAS token instead of a user name and password. */
  share?: { path: string; userName?: string; password?: Sealed; storageAccountKey?: Sealed; sasToken?: Sealed };
  encryption?: EncryptionSettings;
  /** `enabledAt`: when the scheduler was last turned on; BackupOverdue counts from it until a backup succeeds. */
  scheduler: { enabled: boolean; frequencyInHours: number; retentionPeriodInDays: number; enabledAt?: string };
  roles: StoredRole[];
  lastBackupTime?: string;
  lastSuccessfulBackupTime?: string;
  /** Where alerts are sent besides Get-BackupAlert. */
  alertSinks?: AlertSinks;
  /**
   * The share's free space as Set-BackupShare or Test-BackupShare last measured it, for
   * Get-BackupConfiguration (which does not reach the share); for the share at `path` only.
   */
  shareCapacity?: { path: string; available: number; measuredAt: string };
  /** Size of the last successful backup (what it added to the share), for the capacity check. */
  lastBackupSize?: number;
  /** Bytes the roles of the last successful backup exported: what a first backup into an empty store takes at most. */
  lastBackupDataSize?: number;
  /**
   * What this machine keeps of the share's deduplicating repository (src/repository/keys.ts): its
   * id, its public key and the sealed host secret, for the share at `location`. Never the key that
   * reads backups.
   */
  repository?: {
    location: string;
    id: string;
    publicKey: string;
    hostSecret: Sealed;
    /** Its config.xml's wraps were seen sealed (WrapsMac): a config without the seal is then tampered with. */
    wrapsSealed?: true;
  };
}

export const defaultConfig = (): StoredConfig => ({
  scheduler: { enabled: false, frequencyInHours: 12, retentionPeriodInDays: 7 },
  roles: [],
});

/**
 * Configurations written before several certificates could be configured held the one certificate's
 * fields in `encryption` itself: read as a list of one. The next write stores the list.
 */
function withCertificateList(config: StoredConfig): StoredConfig {
  const enc = config.encryption as (CertificateEncryption & Partial<StoredCertificate>) | KeyRecipient | undefined;
  if (enc?.mode !== 'Certificate' || Array.isArray(enc.certificates)) return config;
  const { mode: _mode, certificates: _none, ...certificate } = enc;
  return { ...config, encryption: { mode: 'Certificate', certificates: [certificate as StoredCertificate] } };
}

const CONFIG_NAME = 'config';
/** config.json holds the share, the encryption and the role catalog: a few KB, even with many roles. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** Whether anything in this configuration is sealed, i.e. opens only with seal.key. */
export function holdsSealedSecrets(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (typeof (value as Partial<Sealed>).sealed === 'string') return true;
  return Object.values(value).some(holdsSealedSecrets);
}

const SEALING_KEY_REMEDY = (file: string) =>
  `Put back ${file} from a copy of this folder if there is one. Otherwise delete it, then give again what it sealed: the share and encryption (Set-BackupShare) and each role's -DatabasePassword (Register-InfrastructureRole).`;

export class ConfigStore {
  readonly home: string;
  /** A sealing key made by this store and not yet on disk (sealingKey, update). */
  private newSealingKey: Buffer | undefined;
  constructor(home: string) {
    this.home = home;
  }

  get file(): string {
    return join(this.home, `${CONFIG_NAME}.json`);
  }

  private ensureHome(): void {
    makeHome(this.home);
  }

  read(): StoredConfig {
    let text: string;
    try {
      text = readFileBoundedSync(this.file, {
        what: 'configuration file',
        maxBytes: MAX_CONFIG_BYTES,
        remediation: `Put back ${this.file} from a copy, or move it aside and run Clear-BackupConfiguration to start over; check that AZSBACKUP_HOME (${this.home}) is this service's folder.`,
        exitCode: ExitCode.Failure,
      }).toString('utf8');
    } catch (e) {
      if (isMissingFile(e) && !homeIsAFile(this.home)) return defaultConfig();
      throw isMissingFile(e) ? homeError(e, this.home) : e;
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('it does not hold a JSON object');
      return withCertificateList({ ...defaultConfig(), ...(parsed as Partial<StoredConfig>) });
    } catch (e) {
      throw new AzsError(`The configuration file ${this.file} is not valid JSON: ${(e as Error).message}`, {
        errorId: 'ConfigurationCorrupt',
        category: 'InvalidData',
        exitCode: 1,
        targetObject: this.file,
        recommendedAction:
          'Restore the file from a copy, or run Clear-BackupConfiguration (it keeps the damaged file beside, as config.json.corrupt-<time>) and configure again: the share, the encryption and the roles.',
      });
    }
  }

  /**
   * Read-modify-write under the configuration lock; returns what was written. With `setAsideDamaged`
   * (Clear-BackupConfiguration, which a damaged file's error recommends), a file that is not valid
   * JSON is renamed beside (config.json.corrupt-<time>, for whoever wants to salvage it) and the
   * change applies to the defaults.
   */
  async update(change: (current: StoredConfig) => StoredConfig, { setAsideDamaged = false } = {}): Promise<StoredConfig> {
    this.ensureHome();
    return withLock(join(this.home, 'config.lock'), 'configuration', async () => {
      let current: StoredConfig;
      try {
        current = this.read();
      } catch (e) {
        if (!setAsideDamaged || !isAzsError(e) || e.errorId !== 'ConfigurationCorrupt') throw e;
        renameSync(this.file, `${this.file}.corrupt-${new Date().toISOString().replace(/[-:.]/g, '')}`);
        current = defaultConfig();
      }
      const next = change(current);
      if (this.newSealingKey) this.keepSealingKey(this.newSealingKey);
      try {
        // Tab-indented, as conf wrote it.
        writeFileWhole(this.file, JSON.stringify(next, undefined, '\t'), { mode: 0o600, replace: true });
        chmodSync(this.file, 0o600);
      } catch (e) {
        throw homeError(e, this.home);
      }
      return next;
    });
  }

  /**
   * Puts a new sealing key on disk before the configuration that uses it: written whole, then
   * linked into place, which fails if another process was first (a reader never sees it empty or
   * half written). The values sealed with ours would not open under the other's key, so this
   * command stops before writing them; run again, it seals with the key on disk.
   */
  private keepSealingKey(key: Buffer): void {
    const file = join(this.home, 'seal.key');
    try {
      writeFileWhole(file, key.toString('base64'), { mode: 0o600, replace: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw homeError(e, this.home);
      throw new AzsError(`Another azsbackup command made the sealing key ${file} while this one ran; nothing was saved.`, {
        errorId: 'SealingKeyRace',
        category: 'ResourceBusy',
        exitCode: ExitCode.Locked,
        targetObject: file,
        retryable: true,
        recommendedAction: 'Run the command again: it seals with the key now on disk.',
      });
    }
    this.newSealingKey = undefined;
  }

  seal(plaintext: string, context: string): Sealed {
    return { sealed: sealSecret(plaintext, this.sealingKey(), context) };
  }

  open(value: Sealed, context: string): string {
    return openSecret(value.sealed, this.sealingKey(), context);
  }

  /** Whether seal.key is there; without it, nothing sealed in config.json opens. */
  hasSealingKey(): boolean {
    return existsSync(join(this.home, 'seal.key'));
  }

  private sealingKeyMissing(file: string): AzsError {
    return new AzsError(`The sealing key ${file} is missing: the secrets sealed in ${this.file} cannot be opened without it.`, {
      errorId: 'SealingKeyMissing',
      category: 'ObjectNotFound',
      exitCode: ExitCode.Failure,
      targetObject: file,
      recommendedAction:
        `Put back ${file} from the copy of this folder that config.json came from (a new key would open none of its secrets, so none is made). ` +
        "If there is none, run Clear-BackupConfiguration, which drops the secrets sealed with the lost key, then give them again: the share and encryption (Set-BackupShare) and each role's -DatabasePassword (Register-InfrastructureRole).",
    });
  }

  /**
   * The key that seals secrets at rest, readable only by the owner. Made on first use but kept on
   * disk only by update(), with the configuration that holds what it sealed: a command refused
   * after sealing (a share that does not answer, -WhatIf) leaves no home and no key behind. Never
   * made while config.json holds secrets sealed with a key that is gone (SealingKeyMissing).
   */
  private sealingKey(): Buffer {
    if (this.newSealingKey) return this.newSealingKey;
    const file = join(this.home, 'seal.key');
    if (!existsSync(file)) {
      // A new key opens nothing sealed with the lost one: made silently, it would turn every secret
      // in config.json into "sealed with another key", and what is sealed next would need it while
      // the rest needs the old one, so putting the old key back would no longer mend everything.
      if (holdsSealedSecrets(this.read())) throw this.sealingKeyMissing(file);
      this.newSealingKey = randomBytes(32);
      return this.newSealingKey;
    }
    const key = Buffer.from(
      readFileBoundedSync(file, { what: 'sealing key', maxBytes: 4096, remediation: SEALING_KEY_REMEDY(file), exitCode: ExitCode.Failure })
        .toString('utf8')
        .trim(),
      'base64',
    );
    if (key.length !== 32) {
      throw new AzsError(`The sealing key ${file} is damaged.`, {
        errorId: 'SealingKeyCorrupt',
        category: 'InvalidData',
        exitCode: 1,
        targetObject: file,
        recommendedAction: SEALING_KEY_REMEDY(file),
      });
    }
    return key;
  }
}
