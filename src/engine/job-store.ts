import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isAlive, processStartTime } from '../config/file-lock.js';
import { pidNamespace } from '../process/owner.js';
import { homeError, makeHome } from '../config/home-folder.js';
import { writeFileWhole } from '../fs/durable-write.js';
import { readFileBoundedSync } from '../io/bounded-read.js';
import type { BackupRecord } from './backup-record.js';

/**
 * Local job history: one file per backup job, so a job running in the background and the commands
 * that read its progress never contend for one file. The share stays the truth for what exists;
 * this adds what the share cannot say (a running job's progress, a failed job's errors).
 */

/** The process running a job, as its record names it: enough to tell, later, whether it still runs. */
export interface JobProcess {
  Pid?: number;
  PidStartTime?: string | null;
  /** The PID namespace Pid is numbered in; absent in records of earlier versions (this one's). */
  PidNamespace?: string;
}

export interface JobRecord extends BackupRecord, JobProcess {}

/** `pid`, this process or one it started (so in its PID namespace), as a job record names it. */
export function jobProcess(pid: number): JobProcess {
  const ns = pidNamespace();
  return { Pid: pid, PidStartTime: processStartTime(pid), ...(ns ? { PidNamespace: ns } : {}) };
}

/** The record as the operator sees it, without the process. */
export function withoutProcess({ Pid: _pid, PidStartTime: _start, PidNamespace: _ns, ...record }: JobRecord): BackupRecord {
  return record;
}

/** A job record is a Backup object of a few KB (role errors are cut to 4 KiB each). */
const MAX_JOB_RECORD_BYTES = 1024 * 1024;

export class JobStore {
  constructor(private readonly home: string) {}

  private get dir(): string {
    return join(this.home, 'jobs');
  }

  save(job: JobRecord): void {
    makeHome(this.home);
    const file = join(this.dir, `${job.Name}.json`);
    // Saved every half second while a backup runs: atomic, not fsynced, which would stall the data
    // path; a record a crash loses belongs to a job that settle() reports as interrupted anyway.
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      writeFileWhole(file, JSON.stringify(job), { mode: 0o600, replace: true, durable: false });
    } catch (e) {
      throw homeError(e, this.home);
    }
  }

  /** A job's record, or undefined when there is none or it is not one (damaged, too large, not a file). */
  get(name: string): JobRecord | undefined {
    try {
      const file = join(this.dir, `${name.toLowerCase()}.json`);
      const text = readFileBoundedSync(file, { what: 'job record', maxBytes: MAX_JOB_RECORD_BYTES, remediation: `Remove ${file}.` });
      return this.settle(JSON.parse(text.toString('utf8')) as JobRecord);
    } catch {
      return undefined;
    }
  }

  list(): JobRecord[] {
    let files: string[];
    try {
      files = readdirSync(this.dir).filter((f) => f.endsWith('.json'));
    } catch {
      return [];
    }
    return files.map((f) => this.get(f.slice(0, -5))).filter((j): j is JobRecord => j !== undefined);
  }

  /** The names (lower case) of every backup a job of this AZSBACKUP_HOME started. */
  names(): Set<string> {
    try {
      return new Set(
        readdirSync(this.dir)
          .filter((f) => f.endsWith('.json'))
          .map((f) => f.slice(0, -5)),
      );
    } catch {
      return new Set();
    }
  }

  remove(name: string): void {
    rmSync(join(this.dir, `${name.toLowerCase()}.json`), { force: true });
  }

  /** A job whose process died without finishing was interrupted: it failed. */
  private settle(job: JobRecord): JobRecord {
    if ((job.Status === 'Running' || job.Status === 'Queued') && job.Pid !== undefined) {
      const runner = {
        pid: job.Pid,
        startTime: job.PidStartTime ?? null,
        hostname: hostname(),
        pidNamespace: job.PidNamespace,
        acquiredAt: job.CreatedDateTime,
      };
      if (!isAlive(runner)) {
        return { ...job, Status: 'Failed', Progress: 'The job was interrupted: its process ended before the backup completed.' };
      }
    }
    return job;
  }
}
