export type { CliIo, Command } from './io.js';
export { write } from './io.js';
export { run, main } from './main.js';
