/** "Did you mean" suggestions for mistyped cmdlet and parameter names. */

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The words of a name: split at '-', '_', spaces and capitals, lower-cased, of 3 letters or more. */
function wordsOf(name: string): string[] {
  return name
    .split(/[-_\s]|(?=[A-Z])/)
    .map((w) => w.toLowerCase())
    .filter((w) => w.length >= 3);
}

/**
 * Candidates close to `input`, case-insensitively, closest first, at most `limit`. A candidate is
 * close when it is within a few edits, contains the whole input, or shares a word of it (e.g.
 * "Get-Backup" suggests Get-InfrastructureBackup). The order weighs both: the fewer edits for the
 * length and the more of the typed words a candidate holds, the earlier it comes, so a one-letter
 * typo of a cmdlet comes before cmdlets that only share its noun.
 */
export function closeMatches(input: string, candidates: readonly string[], limit = 5): string[] {
  const needle = input.toLowerCase();
  const words = wordsOf(input);
  const threshold = Math.max(2, Math.floor(needle.length / 3));
  const scored = candidates.map((c) => {
    const lower = c.toLowerCase();
    const edits = distance(needle, lower);
    const shared = words.filter((w) => lower.includes(w));
    const close = edits <= threshold || lower.includes(needle) || shared.some((w) => w.length >= 4);
    return { c, close, score: edits / Math.max(needle.length, lower.length) - 0.2 * shared.length };
  });
  return scored
    .filter((s) => s.close)
    .sort((a, b) => a.score - b.score || a.c.localeCompare(b.c))
    .slice(0, limit)
    .map((s) => s.c);
}
