import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { Ajv } from 'ajv';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertCatalog, type Alert } from '../../src/alerts/alerts.js';
import { dbRows, fingerprint } from '../support/cli.js';
import { Database } from '../support/provider-fixtures.js';
import { findPostgresBin, startPostgres, type TestPostgres } from '../support/postgres.js';

/**
 * docs/OPERATIONS.md cannot rot: its marked shell blocks run here, in the order of the page, on
 * one temporary machine (an AZSBACKUP_HOME, a local folder as the share, sample roles, a throwaway
 * PostgreSQL), each followed by a check of what it should have done. Its alert schema validates
 * the documents the product really sends, its alert sections match src/alerts/ word for word, and
 * the unit files and cron line it points at are checked and run.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const guide = readFileSync(join(root, 'docs/OPERATIONS.md'), 'utf8');

/** The fenced blocks preceded by `<!-- kind: name -->`, in page order. */
function marked(kind: 'test' | 'schema' | 'example'): { name: string; body: string }[] {
  const re = new RegExp(`<!-- ${kind}: ([\\w-]+) -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\`\\n`, 'g');
  return [...guide.matchAll(re)].map((m) => ({ name: m[1]!, body: m[2]! }));
}

const alertSchema = JSON.parse(marked('schema').find((b) => b.name === 'alert')!.body) as {
  properties: Record<string, { enum?: string[] }>;
  required: string[];
};
const validateAlert = new Ajv({ allErrors: true }).compile(alertSchema);
const expectValidAlert = (doc: unknown) => {
  validateAlert(doc);
  expect(validateAlert.errors ?? []).toEqual([]);
};

const base = mkdtempSync(join(tmpdir(), 'azs-operations-'));
const bin = join(base, 'bin');
const pg: { server?: TestPostgres } = {};
const hasPostgres = findPostgresBin() !== undefined;
const received: { webhook: Alert[]; answers: number[] } = { webhook: [], answers: [503] };
let server: Server;

const env: Record<string, string> = {
  ...(Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AZSBACKUP_'))) as Record<string, string>),
  PATH: `${bin}:${process.env.PATH}`,
  AZSBACKUP_HOME: join(base, 'home'),
  SHARE: join(base, 'share'),
  KEYS: join(base, 'keys'),
  OFFLINE: join(base, 'offline'),
  CA_DIR: join(base, 'infra', 'ca'),
  IDENTITY_DB: join(base, 'infra', 'identity', 'identity.db'),
  PFX_PASSWORD: `first ${randomBytes(6).toString('hex')}`,
  NEW_PFX_PASSWORD: `second ${randomBytes(6).toString('hex')}`,
  ALERT_COMMAND: join(base, 'alert-to-log'),
  PG_URI: '',
  PG_USER: 'nobody',
  PG_PASSWORD: 'none',
};
const alertLog = join(base, 'alerts.jsonl');
const commandAlerts = (): Alert[] =>
  existsSync(alertLog)
    ? readFileSync(alertLog, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Alert)
    : [];

async function sh(script: string, extraEnv: Record<string, string> = {}) {
  const r = await execa('bash', ['-euo', 'pipefail', '-c', script], {
    cwd: base,
    env: { ...env, ...extraEnv },
    extendEnv: false,
    reject: false,
    timeout: 120_000,
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}
async function cli(...args: string[]): Promise<any> {
  const r = await sh(`azsbackup ${args.map((a) => `'${a}'`).join(' ')} --output json`);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
}
const backups = async (): Promise<any[]> => [await cli('Get-InfrastructureBackup')].flat().filter(Boolean);
const pgRows = () => pg.server!.sql('resourcemanager', 'SELECT id, name FROM tenants ORDER BY id');

beforeAll(async () => {
  mkdirSync(bin);
  symlinkSync(join(root, 'bin', 'azsbackup.js'), join(bin, 'azsbackup'));
  mkdirSync(env.SHARE!);
  // The roles' data: a CA folder (a private key of mode 0600, a link) and an identity database.
  mkdirSync(join(env.CA_DIR!, 'certs'), { recursive: true });
  writeFileSync(join(env.CA_DIR!, 'ca.conf'), '[ca]\ndefault_ca = root\n');
  writeFileSync(join(env.CA_DIR!, 'certs', 'root.pem'), '-----BEGIN CERTIFICATE-----\n');
  writeFileSync(join(env.CA_DIR!, 'private.key'), randomBytes(64), { mode: 0o600 });
  symlinkSync('certs/root.pem', join(env.CA_DIR!, 'current.pem'));
  mkdirSync(join(base, 'infra', 'identity'));
  const db = new Database(env.IDENTITY_DB!);
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, secret BLOB)');
  for (let i = 1; i <= 50; i++) db.prepare('INSERT INTO items (name, secret) VALUES (?, ?)').run(`user-${i}`, randomBytes(16));
  db.close();
  // A command sink that appends each alert it reads to a log, and a webhook whose first answer is 503.
  writeFileSync(
    env.ALERT_COMMAND!,
    `#!${process.execPath}\nlet s = ''; process.stdin.on('data', (c) => s += c).on('end', () => require('node:fs').appendFileSync(${JSON.stringify(alertLog)}, s + '\\n'));\n`,
  );
  chmodSync(env.ALERT_COMMAND!, 0o755);
  server = createServer((req, res) => {
    let body = '';
    req
      .on('data', (c) => {
        body += c;
      })
      .on('end', () => {
        expect(req.method).toBe('POST');
        expect(req.headers['content-type']).toBe('application/json');
        received.webhook.push(JSON.parse(body) as Alert);
        res.writeHead(received.answers.shift() ?? 204).end();
      });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  env.ALERT_WEBHOOK = `http://127.0.0.1:${(server.address() as AddressInfo).port}/azsbackup`;
  if (hasPostgres) {
    pg.server = await startPostgres();
    await pg.server.createDatabase('resourcemanager');
    await pg.server.sql(
      'resourcemanager',
      "CREATE TABLE tenants (id int PRIMARY KEY, name text); INSERT INTO tenants SELECT i, 'tenant ' || i FROM generate_series(1, 40) AS i;",
    );
    Object.assign(env, {
      PG_URI: `postgresql://${pg.server.user}@127.0.0.1:${pg.server.port}/resourcemanager`,
      PG_USER: pg.server.user,
      PG_PASSWORD: pg.server.password,
    });
  }
}, 180_000);

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await pg.server?.stop();
  rmSync(base, { recursive: true, force: true });
});

/** Before a block: what the page says happened until then (the disaster before the restore). */
const before: Record<string, () => Promise<Record<string, string>>> = {
  'restore-redeployed': async () => {
    saved.ca = fingerprint(env.CA_DIR!);
    saved.identity = JSON.stringify(dbRows(env.IDENTITY_DB!));
    if (hasPostgres) saved.rm = await pgRows();
    rmSync(join(base, 'infra'), { recursive: true, force: true });
    if (hasPostgres) await pg.server!.sql('resourcemanager', 'DROP TABLE tenants');
    // A redeployed machine: an empty home; the .pfx is on the offline media only.
    return { AZSBACKUP_HOME: join(base, 'redeployed-home'), PFX_PASSWORD: env.NEW_PFX_PASSWORD! };
  },
};
const saved: Record<string, string> = {};

/** After each block: what it should have done. */
const after: Record<string, (out: string) => Promise<void>> = {
  'setup-certificate': async (out) => {
    expect(out).toMatch(/Thumbprint\s+: [0-9A-F]{40}/);
    expect(statSync(join(env.KEYS!, 'backup-1.pfx')).mode & 0o777).toBe(0o600);
    expect(statSync(env.KEYS!).mode & 0o777).toBe(0o700);
  },
  'setup-share': async (out) => {
    expect(out).toMatch(/HasEnoughCapacity\s+: True/);
    expect(await cli('Get-BackupConfiguration')).toMatchObject({
      Path: env.SHARE,
      EncryptionMode: 'Certificate',
      BackupFrequencyInHours: 6,
      BackupRetentionPeriodInDays: 7,
    });
  },
  'setup-roles': async () => {
    expect([await cli('Get-InfrastructureRole')].flat().map((r: any) => r.Name)).toEqual(['Identity', 'CA']);
  },
  'first-backup': async (out) => {
    expect(out).toMatch(/IsValid\s+: True/);
    expect((await backups()).map((b) => b.Status)).toEqual(['Succeeded']);
  },
  'schedule-enable': async () => {
    expect(await cli('Get-BackupConfiguration')).toMatchObject({ IsBackupSchedulerEnabled: true, BackupFrequencyInHours: 6 });
    expect(await backups()).toHaveLength(1); // the last backup is recent: the tick had nothing to do
  },
  'alert-sinks': async (out) => {
    // The block prints the new configuration, then what jq picked from it.
    expect(JSON.parse(out.slice(out.lastIndexOf('\n{') + 1))).toEqual({
      AlertCommand: [env.ALERT_COMMAND],
      AlertWebhookUri: `${new URL(env.ALERT_WEBHOOK!).origin}/…`,
    });
    // Something fails: a role whose export command breaks. The alert reaches both sinks.
    await cli(
      'Register-InfrastructureRole',
      '-Name',
      'Reports',
      '-Provider',
      'command',
      '-ExportCommand:sh',
      '-ExportCommand:-c',
      '-ExportCommand:echo reports database is locked >&2; exit 1',
      '-ImportCommand:true',
    );
    expect((await sh('azsbackup Start-InfrastructureBackup')).code).toBe(3);
    const [byCommand] = commandAlerts();
    const [byWebhook] = received.webhook;
    expect(byCommand).toEqual(byWebhook);
    expect(byCommand).toMatchObject({ AlertType: 'BackupGeneral', Status: 'Active', Remediation: alertCatalog.BackupGeneral.remediation });
    expect(byCommand!.Description).toMatch(/reports database is locked/);
    expectValidAlert(byCommand);
  },
  'alerts-read': async (out) => {
    expect(out).toMatch(/AlertType\s+: BackupGeneral/);
    expect(out).toMatch(/DeliveryError\s+: alert webhook answered 503/);
    // Fixed: the next backup closes it, and the closing is sent too, its failed delivery noted.
    await cli('Unregister-InfrastructureRole', '-Name', 'Reports');
    await cli('Start-InfrastructureBackup');
    const closed = commandAlerts()[1]!;
    expect(received.webhook[1]).toEqual(closed);
    expect(closed).toMatchObject({ Id: commandAlerts()[0]!.Id, Status: 'Closed', DeliveryError: expect.stringMatching(/503/) });
    expectValidAlert(closed);
  },
  'postgres-role': async () => {
    const [latest] = await backups();
    expect(latest.RoleStatus.map((r: any) => [r.RoleName, r.Status])).toContainEqual(['ResourceManager', 'Succeeded']);
  },
  'rotate-certificate': async () => {
    const config = await cli('Get-BackupConfiguration');
    const list = await backups();
    expect(list.length).toBeGreaterThan(3);
    expect(new Set(list.map((b) => b.EncryptionCertThumbprint))).toEqual(new Set([config.EncryptionCertThumbprint]));
  },
  capacity: async (out) => {
    const required = Number(/"RequiredCapacity": (\d+)/.exec(out)![1]);
    const [latest] = await backups();
    expect(required).toBe(latest.Size * (Math.ceil((7 * 24) / 6) + 1));
    expect(out).toMatch(/"HasEnoughCapacity": true/);
  },
  'keep-offline': async () => {
    expect(readdirSync(env.KEYS!).sort()).toEqual(['backup-1.cer', 'backup-2.cer']);
    expect(readdirSync(env.OFFLINE!).sort()).toEqual(['backup-1.pfx', 'backup-2.pfx']);
    expect((await backups())[0].Status).toBe('Succeeded');
  },
  'restore-redeployed': async (out) => {
    expect(out.match(/Succeeded/g)?.length).toBeGreaterThanOrEqual(hasPostgres ? 3 : 2);
    expect(fingerprint(env.CA_DIR!)).toBe(saved.ca);
    expect(JSON.stringify(dbRows(env.IDENTITY_DB!))).toBe(saved.identity);
    if (hasPostgres) expect(await pgRows()).toBe(saved.rm);
    expect(readdirSync(env.KEYS!).sort()).toEqual(['backup-1.cer', 'backup-2.cer']);
  },
};

describe('docs/OPERATIONS.md, procedure by procedure', () => {
  const blocks = marked('test');

  it('every marked procedure has its check here, and every check its procedure', () => {
    expect(blocks.map((b) => b.name).sort()).toEqual(Object.keys(after).sort());
  });

  for (const block of blocks) {
    const skip = block.name.startsWith('postgres-') && !hasPostgres;
    it.skipIf(skip)(block.name, async () => {
      const extra = (await before[block.name]?.()) ?? {};
      const r = await sh(block.body, extra);
      expect(r.code, `${block.body}\n${r.stdout}\n${r.stderr}`).toBe(0);
      await after[block.name]!(r.stdout);
    });
  }
});

describe('docs/OPERATIONS.md, the alert reference', () => {
  it('the schema names every field of an alert, every alert type, and its examples are valid', () => {
    expect(alertSchema.properties.AlertType!.enum).toEqual(Object.keys(alertCatalog));
    const examples = marked('example').map((e) => JSON.parse(e.body) as Alert);
    expect(examples).toHaveLength(2);
    for (const example of examples) expectValidAlert(example);
    expect(Object.keys(examples[1]!).sort()).toEqual(Object.keys(alertSchema.properties).sort());
    expect(Object.keys(alertSchema.properties).filter((p) => p !== 'DeliveryError')).toEqual(alertSchema.required);
  });

  it('the schema refuses what is not an alert', () => {
    const [example] = marked('example').map((e) => JSON.parse(e.body) as Record<string, unknown>);
    for (const broken of [
      { ...example, AlertType: 'DiskOnFire' },
      { ...example, Status: 'Closed' },
      { ...example, Extra: 1 },
      { ...example, Remediation: [] },
    ]) {
      expect(validateAlert(broken)).toBe(false);
    }
  });

  it('each alert type has its section, with the severity, title and remediation steps of src/alerts/', () => {
    const sections = [...guide.matchAll(/^#### (\w+): (.+)\n\n(\w+)\. [^\n]*(?:\n[^\n]+)*\n\n((?:\d+\. .+\n)+)/gm)];
    expect(sections.map((s) => s[1])).toEqual(Object.keys(alertCatalog));
    for (const [, type, title, severity, steps] of sections) {
      const def = alertCatalog[type as keyof typeof alertCatalog];
      expect({
        title,
        severity,
        steps: steps!
          .trim()
          .split('\n')
          .map((l) => l.replace(/^\d+\. /, '')),
      }).toEqual({ title: def.title, severity: def.severity, steps: def.remediation });
    }
  });
});

describe('the scheduler units and cron line the guide ships', () => {
  const service = readFileSync(join(root, 'deploy/systemd/azsbackup-scheduler.service'), 'utf8');
  const timer = readFileSync(join(root, 'deploy/systemd/azsbackup-scheduler.timer'), 'utf8');
  const cron = readFileSync(join(root, 'deploy/cron/azsbackup'), 'utf8');
  const setting = (unit: string, key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
  const execStart = setting(service, 'ExecStart')[0]!.split(' ');
  const cronJob = cron.split('\n').filter((l) => l.trim() && !l.startsWith('#') && !/^[A-Z]+=/.test(l));

  it('the service runs the installed azsbackup command on a real cmdlet, with the home systemd makes for it', () => {
    const [program, cmdlet] = execStart;
    expect(program).toBe('/usr/local/bin/azsbackup');
    expect(Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin)).toContain('azsbackup');
    expect(existsSync(join(root, 'manifests', `${cmdlet}.xml`))).toBe(true);
    expect(cmdlet).toBe('Invoke-BackupScheduler');
    expect(setting(service, 'Environment')).toEqual([`AZSBACKUP_HOME=/var/lib/${setting(service, 'StateDirectory')[0]}`]);
    expect(setting(timer, 'Unit')).toEqual(['azsbackup-scheduler.service']);
  });

  it.skipIf(spawnSync('systemd-analyze', ['--version']).status !== 0)('systemd-analyze verify accepts the service and the timer', () => {
    // verify also checks that ExecStart's program exists: point it at this checkout's.
    const dir = join(base, 'units');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'azsbackup-scheduler.service'), service.replace(execStart[0]!, join(root, 'bin', 'azsbackup.js')));
    writeFileSync(join(dir, 'azsbackup-scheduler.timer'), timer);
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'azsbackup-scheduler.service'), join(dir, 'azsbackup-scheduler.timer')], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the cron line is one valid /etc/cron.d entry, the one the guide shows, running what the service runs', () => {
    expect(cronJob).toHaveLength(1);
    expect(guide).toContain(`\n${cronJob[0]}\n`);
    const fields = cronJob[0]!.split(/\s+/);
    const limits = [
      [0, 59],
      [0, 23],
      [1, 31],
      [1, 12],
      [0, 7],
    ] as const;
    limits.forEach(([lo, hi], i) => {
      for (const part of fields[i]!.split(',')) {
        const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
        expect(m, `cron field ${i + 1}: ${part}`).not.toBeNull();
        for (const n of [m![2], m![3]].filter(Boolean).map(Number)) expect(n >= lo && n <= hi, `${n} in ${lo}-${hi}`).toBe(true);
      }
    });
    expect(fields[5]).toBe('root');
    const command = fields.slice(6).join(' ');
    expect(command.startsWith(`${setting(service, 'Environment')[0]} ${execStart.join(' ')} `)).toBe(true);
  });

  it("the service's and the cron line's command runs a tick here", async () => {
    // After the guide's procedures: the guide's home, with the scheduler on and a backup just made.
    const program = join(root, 'bin', 'azsbackup.js');
    const fromService = await sh(`${execStart.join(' ').replace(execStart[0]!, program)}`);
    expect(fromService.code, fromService.stderr).toBe(0);
    const log = join(base, 'scheduler.log');
    const fromCron = await sh(
      cronJob[0]!.split(/\s+/).slice(7).join(' ').replace(execStart[0]!, program).replace('/var/log/azsbackup-scheduler.log', log),
    );
    expect(fromCron.code, fromCron.stderr).toBe(0);
    expect(readFileSync(log, 'utf8')).toBe('');
  });
});
