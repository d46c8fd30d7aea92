import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadRoutesFile } from '../routes/load.js';
import { formatProblems } from '../routes/problems.js';
import { write, type CliIo } from '@sessiongate/service-kit';

export const CHECK_HELP = `Usage: sessiongate check [FILE]
       sessiongate check --routes FILE

Validates a routes file and exits 0 when it is valid, 1 when it is not, printing every
problem as FILE:LINE:COLUMN: message. Use it in CI to gate changes to routes.yaml.

Arguments:
  FILE        the routes file (default: $SESSIONGATE_ROUTES, else ./routes.yaml)

Options:
  --routes FILE  the same as FILE (as \`sessiongate gateway --routes\` spells it)
  -q, --quiet    print nothing when the file is valid
  -h, --help     show this help
`;

/** A usage error in words a person can act on (Node's parser messages are for developers). */
function usageProblem(err: Error & { code?: string }, argv: readonly string[]): string {
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = argv.find((a) => a.startsWith('-') && !['-q', '--quiet', '-h', '--help'].includes(a) && !a.startsWith('--routes'));
    return `unknown option ${option ?? ''}`.trim() + '; give the routes file as FILE or with --routes FILE';
  }
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return '--routes needs a file: sessiongate check --routes routes.yaml';
  return err.message;
}

export async function checkCommand(argv: string[], io: CliIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { help: { type: 'boolean', short: 'h' }, quiet: { type: 'boolean', short: 'q' }, routes: { type: 'string' } },
    });
  } catch (err) {
    write(io.stderr, `sessiongate check: ${usageProblem(err as Error, argv)}\n\n${CHECK_HELP}`);
    return 2;
  }
  if (parsed.values.help) {
    write(io.stdout, CHECK_HELP);
    return 0;
  }
  const given = [...(parsed.values.routes !== undefined ? [parsed.values.routes] : []), ...parsed.positionals];
  if (given.length > 1) {
    write(io.stderr, `sessiongate check: one file at a time\n\n${CHECK_HELP}`);
    return 2;
  }
  const env = io.env ?? process.env;
  const file = given[0] ?? (env.SESSIONGATE_ROUTES?.trim() || './routes.yaml');
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
