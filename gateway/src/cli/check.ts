import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatProblems, loadRoutesFile } from '../routes/config.js';
import { write, type CliIo } from '@sessiongate/service-kit';

export const CHECK_HELP = `Usage: sessiongate check [FILE]

Validates a routes file and exits 0 when it is valid, 1 when it is not, printing every
problem as FILE:LINE:COLUMN: message. Use it in CI to gate changes to routes.yaml.

Arguments:
  FILE        the routes file (default: $SESSIONGATE_ROUTES, else ./routes.yaml)

Options:
  -q, --quiet print nothing when the file is valid
  -h, --help  show this help
`;

export async function checkCommand(argv: string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' }, quiet: { type: 'boolean', short: 'q' } } });
  } catch (err) {
    write(io.stderr, `sessiongate check: ${(err as Error).message}\n\n${CHECK_HELP}`);
    return 2;
  }
  if (parsed.values.help) {
    write(io.stdout, CHECK_HELP);
    return 0;
  }
  if (parsed.positionals.length > 1) {
    write(io.stderr, `sessiongate check: one file at a time\n\n${CHECK_HELP}`);
    return 2;
  }
  const env = io.env ?? process.env;
  const file = parsed.positionals[0] ?? (env.SESSIONGATE_ROUTES?.trim() || './routes.yaml');
  const r = await loadRoutesFile(file);
  if (!r.ok) {
    write(io.stderr, formatProblems(file, r.problems));
    write(io.stderr, `${file}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`);
    return 1;
  }
  if (!parsed.values.quiet) {
    const routes = r.routes.routes;
    write(io.stdout, `${path.normalize(file)}: valid, ${routes.length} route${routes.length === 1 ? '' : 's'}`);
    for (const route of routes) {
      const roles = route.rule.roles ? ('all' in route.rule.roles ? `all of [${route.rule.roles.all.join(', ')}]` : `any of [${route.rule.roles.any.join(', ')}]`) : '';
      const overrides = Object.keys(route.methods).length ? ` (overrides: ${Object.keys(route.methods).join(', ')})` : '';
      write(io.stdout, `  ${route.name.padEnd(16)} ${route.prefix.padEnd(24)} → ${route.upstream}  auth ${route.rule.auth}${roles ? `, roles ${roles}` : ''}${overrides}`);
    }
  }
  return 0;
}
