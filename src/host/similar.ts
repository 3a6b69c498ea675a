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

/**
 * Candidates close to `input`, case-insensitively: within a few edits, or sharing a word of it
 * (e.g. "Get-Backup" suggests Get-InfrastructureBackup), closest first, at most `limit`.
 */
export function closeMatches(input: string, candidates: readonly string[], limit = 5): string[] {
  const needle = input.toLowerCase();
  const words = input.split(/[-_\s]|(?=[A-Z])/).map((w) => w.toLowerCase()).filter((w) => w.length >= 4);
  const scored = candidates.map((c) => {
    const lower = c.toLowerCase();
    let score = distance(needle, lower);
    if (lower.includes(needle) || words.some((w) => lower.includes(w))) score = Math.min(score, Math.max(1, Math.abs(lower.length - needle.length) / 4));
    return { c, score };
  });
  const threshold = Math.max(2, Math.floor(needle.length / 3));
  return scored
    .filter((s) => s.score <= threshold)
    .sort((a, b) => a.score - b.score || a.c.localeCompare(b.c))
    .slice(0, limit)
    .map((s) => s.c);
}
