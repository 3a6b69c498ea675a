/**
 * The approved PowerShell verbs, as `Get-Verb` lists them in PowerShell 7, by group. A manifest's
 * Verb must be one of them so the generated module imports without the "unapproved verbs" warning.
 */
export const approvedVerbGroups = {
  Common: [
    'Add',
    'Clear',
    'Close',
    'Copy',
    'Enter',
    'Exit',
    'Find',
    'Format',
    'Get',
    'Hide',
    'Join',
    'Lock',
    'Move',
    'New',
    'Open',
    'Optimize',
    'Pop',
    'Push',
    'Redo',
    'Remove',
    'Rename',
    'Reset',
    'Resize',
    'Search',
    'Select',
    'Set',
    'Show',
    'Skip',
    'Split',
    'Step',
    'Switch',
    'Undo',
    'Unlock',
    'Watch',
  ],
  Communications: ['Connect', 'Disconnect', 'Read', 'Receive', 'Send', 'Write'],
  Data: [
    'Backup',
    'Checkpoint',
    'Compare',
    'Compress',
    'Convert',
    'ConvertFrom',
    'ConvertTo',
    'Dismount',
    'Edit',
    'Expand',
    'Export',
    'Group',
    'Import',
    'Initialize',
    'Limit',
    'Merge',
    'Mount',
    'Out',
    'Publish',
    'Restore',
    'Save',
    'Sync',
    'Unpublish',
    'Update',
  ],
  Diagnostic: ['Debug', 'Measure', 'Ping', 'Repair', 'Resolve', 'Test', 'Trace'],
  Lifecycle: [
    'Approve',
    'Assert',
    'Build',
    'Complete',
    'Confirm',
    'Deny',
    'Deploy',
    'Disable',
    'Enable',
    'Install',
    'Invoke',
    'Register',
    'Request',
    'Restart',
    'Resume',
    'Start',
    'Stop',
    'Submit',
    'Suspend',
    'Uninstall',
    'Unregister',
    'Wait',
  ],
  Security: ['Block', 'Grant', 'Protect', 'Revoke', 'Unblock', 'Unprotect'],
  Other: ['Use'],
} as const;

export type VerbGroup = keyof typeof approvedVerbGroups;

export const approvedVerbs: readonly string[] = Object.values(approvedVerbGroups).flat();

/** The approved verb with its canonical casing, or undefined. PowerShell compares verbs case-insensitively. */
export function approvedVerb(verb: string): string | undefined {
  const lower = verb.toLowerCase();
  return approvedVerbs.find((v) => v.toLowerCase() === lower);
}

/** The group of an approved verb, for messages such as "use Remove (Common) instead". */
export function verbGroup(verb: string): VerbGroup | undefined {
  const lower = verb.toLowerCase();
  for (const [group, verbs] of Object.entries(approvedVerbGroups) as [VerbGroup, readonly string[]][]) {
    if (verbs.some((v) => v.toLowerCase() === lower)) return group;
  }
  return undefined;
}
