/**
 * The online help of the module's commands (what Get-Help -Online opens): the PowerShell guide,
 * docs/POWERSHELL.md, in the repository named by package.json's `homepage` or `repository.url`.
 * Without either there is no published address, and the functions carry no HelpUri.
 */

export interface PackageLinks {
  homepage?: unknown;
  repository?: unknown;
}

/** The repository's web address from a package.json's links, or undefined when it names none. */
function repositoryAddress(pkg: PackageLinks): string | undefined {
  const repository =
    typeof pkg.repository === 'object' && pkg.repository !== null ? (pkg.repository as { url?: unknown }).url : pkg.repository;
  for (const candidate of [pkg.homepage, repository]) {
    if (typeof candidate !== 'string') continue;
    // npm's forms: https://host/owner/name#readme, git+https://host/owner/name.git.
    const address = candidate
      .trim()
      .replace(/^git\+/, '')
      .replace(/#.*$/, '')
      .replace(/\.git$/, '')
      .replace(/\/+$/, '');
    if (/^https?:\/\/[^\s'"]+$/.test(address)) return address;
  }
  return undefined;
}

/** `<repository>/blob/main/docs/POWERSHELL.md`, or undefined when package.json names no address. */
export function onlineHelpUri(pkg: PackageLinks): string | undefined {
  const address = repositoryAddress(pkg);
  return address === undefined ? undefined : `${address}/blob/main/docs/POWERSHELL.md`;
}
