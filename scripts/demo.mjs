// The drill an operator runs before trusting the service: make sample infrastructure, back it up
// to a local folder share with a certificate, destroy it, restore it on a "redeployed" machine
// (an empty AZSBACKUP_HOME), and prove every role came back byte for byte. It drives the public
// command line only, like an operator.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, lstatSync, readlinkSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3');
const cli = new URL('../bin/azsbackup.js', import.meta.url).pathname;
const keep = process.argv.includes('--keep');
const work = mkdtempSync(join(tmpdir(), 'azsbackup-demo-'));
const infra = join(work, 'infrastructure');
const share = join(work, 'share');
const pfxPassword = `demo-${createHash('sha256').update(work).digest('hex').slice(0, 16)}`;

function say(text) {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

/** Runs a cmdlet; secrets go on stdin, objects come back parsed, and the table view is shown. */
function azs(home, cmdlet, args = [], { stdin = '', show = true } = {}) {
  const run = (format) =>
    execFileSync(process.execPath, [cli, cmdlet, ...args, '--output', format], {
      env: { ...process.env, AZSBACKUP_HOME: home },
      input: stdin,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'inherit'],
    });
  const json = run('json');
  const objects = json.trim() ? [JSON.parse(json)].flat() : [];
  if (show && objects.length) {
    process.stdout.write(`PS> ${cmdlet} ${args.join(' ')}\n`);
    process.stdout.write(formatTable(objects));
  }
  return objects;
}

function formatTable(objects) {
  const cols = Object.keys(objects[0])
    .filter((k) => objects.some((o) => o[k] !== null && typeof o[k] !== 'object'))
    .slice(0, 6);
  const cell = (v) => (v === null || v === undefined ? '' : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...objects.map((o) => cell(o[c]).length)));
  const line = (vals) =>
    vals
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return `${line(cols)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${objects.map((o) => line(cols.map((c) => cell(o[c])))).join('\n')}\n`;
}

/** Every file, folder and link under `root` with its mode, mtime and content hash. */
function fingerprint(root) {
  const lines = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      const rel = relative(root, p);
      if (st.isSymbolicLink()) lines.push(`L ${rel} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        lines.push(`D ${rel} ${(st.mode & 0o7777).toString(8)}`);
        walk(p);
      } else
        lines.push(
          `F ${rel} ${(st.mode & 0o7777).toString(8)} ${Math.floor(st.mtimeMs / 1000)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`,
        );
    }
  };
  walk(root);
  return lines.join('\n');
}

function dbRows(file) {
  const db = new Database(file, { readonly: true });
  try {
    return JSON.stringify(db.prepare('SELECT id, upn, display_name, password_hash FROM users ORDER BY id').all());
  } finally {
    db.close();
  }
}

function makeInfrastructure() {
  mkdirSync(join(infra, 'identity'), { recursive: true });
  const db = new Database(join(infra, 'identity', 'identity.db'));
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, upn TEXT UNIQUE, display_name TEXT, password_hash BLOB)');
  const insert = db.prepare('INSERT INTO users (upn, display_name, password_hash) VALUES (?, ?, ?)');
  db.transaction(() => {
    for (let i = 1; i <= 500; i++) insert.run(`user${i}@contoso.local`, `User ${i}`, createHash('sha256').update(`pw${i}`).digest());
  })();
  db.close();

  const ca = join(infra, 'ca');
  mkdirSync(join(ca, 'private'), { recursive: true, mode: 0o700 });
  mkdirSync(join(ca, 'certs'), { recursive: true });
  for (let i = 1; i <= 5; i++) {
    writeFileSync(
      join(ca, 'certs', `server${i}.pem`),
      `-----BEGIN CERTIFICATE-----\n${createHash('sha512').update(`cert${i}`).digest('base64')}\n-----END CERTIFICATE-----\n`,
    );
  }
  writeFileSync(
    join(ca, 'private', 'ca.key'),
    `-----BEGIN PRIVATE KEY-----\n${createHash('sha512').update('ca-key').digest('base64')}\n-----END PRIVATE KEY-----\n`,
    { mode: 0o600 },
  );
  symlinkSync('certs/server1.pem', join(ca, 'current.pem'));

  const config = join(infra, 'configuration');
  mkdirSync(join(config, 'conf.d'), { recursive: true });
  writeFileSync(join(config, 'cloud.json'), JSON.stringify({ region: 'local', fqdn: 'azs.contoso.local', scaleUnits: 4 }, null, 2));
  writeFileSync(join(config, 'conf.d', 'network.ini'), '[network]\nexternal=10.0.0.0/24\n');

  const rm = join(infra, 'resource-manager');
  mkdirSync(rm, { recursive: true });
  for (let i = 1; i <= 20; i++)
    writeFileSync(join(rm, `subscription-${i}.json`), JSON.stringify({ id: i, offers: ['compute', 'storage'], quota: i * 10 }));
}

try {
  const home = join(work, 'home-original');
  const freshHome = join(work, 'home-redeployed');
  mkdirSync(share);
  say(`Sample infrastructure in ${infra}`);
  makeInfrastructure();
  const before = {
    Identity: dbRows(join(infra, 'identity', 'identity.db')),
    CA: fingerprint(join(infra, 'ca')),
    Configuration: fingerprint(join(infra, 'configuration')),
    ResourceManager: fingerprint(join(infra, 'resource-manager')),
  };

  say('An encryption certificate (the .pfx stays with the operator)');
  azs(
    home,
    'New-EncryptionKey',
    ['-Certificate', '-CertificatePath', join(work, 'backup.cer'), '-PfxPath', join(work, 'backup.pfx'), '-PfxPassword', '-'],
    { stdin: `${pfxPassword}\n` },
  );

  say('The share: a local folder; the .pfx is given once so that backups prove who made them, and is not kept');
  azs(
    home,
    'Set-BackupShare',
    [
      '-Path',
      share,
      '-EncryptionCertPath',
      join(work, 'backup.cer'),
      '-DecryptionCertPath',
      join(work, 'backup.pfx'),
      '-DecryptionCertPassword',
      '-',
      '-BackupRetentionPeriodInDays',
      '7',
    ],
    { stdin: `${pfxPassword}\n` },
  );

  say('The roles');
  azs(home, 'Register-InfrastructureRole', [
    '-Name',
    'Identity',
    '-Provider',
    'sqlite',
    '-DatabasePath',
    join(infra, 'identity', 'identity.db'),
    '-RestoreOrder',
    '10',
  ]);
  azs(home, 'Register-InfrastructureRole', ['-Name', 'CA', '-Provider', 'directory', '-Path', join(infra, 'ca'), '-RestoreOrder', '20']);
  azs(home, 'Register-InfrastructureRole', [
    '-Name',
    'Configuration',
    '-Provider',
    'directory',
    '-Path',
    join(infra, 'configuration'),
    '-RestoreOrder',
    '5',
  ]);
  // Array elements that start with '-' are given as -Param:value, as PowerShell would bind them.
  const argv = (param, values) => values.map((v) => `-${param}:${v}`);
  const rm = join(infra, 'resource-manager');
  azs(home, 'Register-InfrastructureRole', [
    '-Name',
    'ResourceManager',
    '-Provider',
    'command',
    ...argv('ExportCommand', ['tar', '-C', rm, '-cf', '-', '.']),
    ...argv('ImportCommand', ['tar', '-C', rm, '-xpf', '-']),
    '-RestoreOrder',
    '30',
  ]);
  azs(home, 'Get-InfrastructureRole', [], { show: true });

  say('Back up');
  const [backup] = azs(home, 'Start-InfrastructureBackup');
  azs(home, 'Get-InfrastructureBackup', ['-Name', backup.Name], { show: false })[0].RoleStatus.forEach((r) => {
    process.stdout.write(`  ${r.RoleName.padEnd(16)} ${r.Status.padEnd(10)} ${r.Size} bytes -> ${r.StoredSize} stored\n`);
  });

  say('Check it without the key, then with the .pfx');
  azs(home, 'Test-InfrastructureBackup', ['-Name', backup.Name]);
  azs(
    home,
    'Test-InfrastructureBackup',
    ['-Name', backup.Name, '-DecryptionCertPath', join(work, 'backup.pfx'), '-DecryptionCertPassword', '-'],
    { stdin: `${pfxPassword}\n` },
  );

  say("Disaster: every role is destroyed, and so is the service's own configuration");
  rmSync(infra, { recursive: true, force: true });
  mkdirSync(join(infra, 'resource-manager'), { recursive: true }); // the redeployed machine has the empty folder
  rmSync(home, { recursive: true, force: true });

  say('Redeployed machine: restore with nothing but the share, the .pfx and its password');
  const [found] = azs(freshHome, 'Get-InfrastructureBackup', ['-Path', share, '-Top', '1']);
  azs(
    freshHome,
    'Restore-AzsBackup',
    ['-Name', found.Name, '-Path', share, '-DecryptionCertPath', join(work, 'backup.pfx'), '-DecryptionCertPassword', '-'],
    { stdin: `${pfxPassword}\n` },
  );

  say('Compare');
  const after = {
    Identity: dbRows(join(infra, 'identity', 'identity.db')),
    CA: fingerprint(join(infra, 'ca')),
    Configuration: fingerprint(join(infra, 'configuration')),
    ResourceManager: fingerprint(join(infra, 'resource-manager')),
  };
  let identical = true;
  for (const role of Object.keys(before)) {
    const same = before[role] === after[role];
    identical &&= same;
    process.stdout.write(`  ${role.padEnd(16)} ${same ? 'identical' : 'DIFFERENT'}\n`);
  }
  if (!identical) throw new Error('The restored infrastructure differs from the original.');
  say('Drill passed: every role came back identical.');
} finally {
  if (keep) process.stdout.write(`\nKept ${work}\n`);
  else rmSync(work, { recursive: true, force: true });
}
