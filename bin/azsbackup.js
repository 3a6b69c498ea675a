#!/usr/bin/env node
// The installed command: runs the built host (npm run build writes dist/). The exit code is set,
// not forced with process.exit, so output still buffered for a pipe is written out first.
import { main, tuneAllocator } from '../dist/host/main.js';

tuneAllocator();
process.exitCode = await main(process.argv.slice(2));
