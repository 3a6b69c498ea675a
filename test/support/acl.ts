import { execFileSync } from 'node:child_process';

/** Whether Debian's acl and attr tools are here (npm test installs them): the ACL tests need them. */
export const aclTools = ((): boolean => {
  try {
    execFileSync('setfacl', ['--version'], { stdio: 'ignore' });
    execFileSync('getfattr', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A file's ACL as getfacl prints it, without the comment lines. */
export function aclOf(file: string): string {
  return execFileSync('getfacl', ['-p', '-c', file], { encoding: 'utf8' });
}
