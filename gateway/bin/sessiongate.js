#!/usr/bin/env -S node --no-memory-reducer
// --no-memory-reducer: V8's memory reducer compacts a heap that went quiet, and a gateway goes
// quiet just before its traffic comes back, so its requests wait out a pause of 40-60 ms
// (docs/performance.md). Only a command-line flag turns it off.
import { main } from '../dist/cli/main.js';

await main(process.argv.slice(2));
