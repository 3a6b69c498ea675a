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
 *
 * --interrupt-budget=1081344 (16 times V8's 67584): how much bytecode a function runs before V8
 * considers optimizing it with TurboFan. Our processes live for seconds and spend them in native
 * code (cutting, hashing, zstd, AES-GCM, the kernel); at the default, TurboFan compiled a few
 * hundred functions of the walk, the stream plumbing and the packers' messages on V8's background
 * threads, which took 0.2 s of the 1.1 s of CPU of an incremental backup of the 500 MB bench
 * corpus and 0.45 s of a first backup's 3.5 s, on the same two cores as the work (perf, per
 * thread). Only the truly hot functions get there now. Five alternating runs each on the bench's
 * 500 MB corpus (docs/PERFORMANCE.md): first backup median 1.94 s / 3.26 s CPU -> 1.79 s / 2.90 s, incremental
 * 0.82 s / 1.24 s -> 0.77 s / 1.07 s, restore 1.37 s / 2.02 s -> 1.19 s / 1.80 s. 4 times the
 * default did less; --no-turbofan less still on backups.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--interrupt-budget=1081344'];
