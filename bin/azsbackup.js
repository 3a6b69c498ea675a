#!/usr/bin/env -S node --max-semi-space-size=2 --interrupt-budget=1081344
// The installed command: runs the built host (npm run build writes dist/). The exit code is set,
// not forced with process.exit, so output still buffered for a pipe is written out first.
// The first line gives node the flags of src/process/node-flags.ts (env -S: GNU coreutils 8.30+,
// macOS, and npm's Windows shims split them).
import { main, tuneAllocator } from '../dist/host/main.js';

tuneAllocator();
process.exitCode = await main(process.argv.slice(2));
