export type { CliIo, Command } from '@sessiongate/service-kit';
export { write } from '@sessiongate/service-kit';
export { run, main } from './main.js';
