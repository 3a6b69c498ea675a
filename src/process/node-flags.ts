/**
 * The V8 flags every azsbackup process runs with: bin/azsbackup.js's first line (the installed
 * command, and the PowerShell module when it calls it on the PATH), the PowerShell module's call
 * of a .js host (AzsBackup.Runtime.ps1), the background job runner (background-job.ts) and the
 * bench. test/host/node-flags.test.ts checks that they all say the same.
 *
 * --max-semi-space-size=2 (MiB; V8's default on 64-bit is 16): a backup's young objects are
 * short-lived (chunks in flight, one walk entry per file), but V8 grows the young generation to
 * its maximum within seconds of a long run, two semi-spaces of 16 MiB that are then always
 * touched, and collects young garbage (and the Buffers it holds in C++ memory) less often. With
 * 4 MiB, the peak RSS of a first backup of the 5 GiB bench corpus fell from 177-192 MB to
 * 159-163 MB and that of the next backup from 155-167 MB to 132 MB, a restore's by 10-30 MB,
 * with the same CPU time (three runs each, docs/PERFORMANCE.md). With 2 MiB, once the packing
 * threads had come, the first backup of 5 GiB peaked at 187-191 MiB against 193-205 with 4, and
 * a first backup of 500 MB took no more CPU (three runs each).
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
