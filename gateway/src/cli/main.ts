import { readFileSync } from 'node:fs';
import { write, type CliIo, type Command } from '@sessiongate/service-kit';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export const MAIN_HELP = `sessiongate ${VERSION}: server-side sessions for microservices behind one edge gateway

Usage: sessiongate [command] [options]

Commands:
  gateway                       run the edge gateway (the default without a command)
  auth                          run the auth service (login, logout, sessions)
  check [FILE]                  validate a routes file (exit 0 valid, 1 invalid)
  users add NAME [--roles a,b]  add a user (password from stdin or prompted)
  users set-roles NAME a,b      change a user's roles; live sessions follow
  users disable NAME            disable a user and end their sessions
  users enable NAME             enable a disabled user
  users set-password NAME       change a user's password
  users list                    list users and their roles
  users remove NAME             remove a user and end their sessions
  api-keys create NAME [--user OWNER] [--roles a,b] [--expires 90d]
                                mint an API key (printed once)
  api-keys list [--user OWNER]  list API keys (never the secrets)
  api-keys revoke ID            revoke an API key on every gateway
  keys generate [--alg EdDSA|HS256]
                                print a new X-Session signing key (a JWK set)
  help [COMMAND]                show help for a command

Every command takes --help. Settings come from the environment; run
\`sessiongate gateway --help\` and \`sessiongate auth --help\` for the full list.

Options:
  -h, --help       show this help
  -v, --version    print the version
`;

/** Commands that live in the auth service package, loaded only when asked for. */
async function authServiceCommand(name: 'authCommand' | 'usersCommand' | 'apiKeysCommand'): Promise<Command> {
  const specifier = '@sessiongate/auth-service/cli';
  try {
    const mod = (await import(specifier)) as Record<string, Command>;
    const cmd = mod[name];
    if (!cmd) throw new Error(`${specifier} has no ${name}`);
    return cmd;
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error('the auth service is not installed next to the gateway (package @sessiongate/auth-service)');
    }
    throw err;
  }
}

// each command loads its own modules when it runs, so `--help` and `check` start fast
const COMMANDS: Record<string, () => Promise<Command>> = {
  gateway: async () => (await import('./serve.js')).serveCommand,
  check: async () => (await import('./check.js')).checkCommand,
  keys: async () => (await import('./keys.js')).keysCommand,
  auth: () => authServiceCommand('authCommand'),
  users: () => authServiceCommand('usersCommand'),
  'api-keys': () => authServiceCommand('apiKeysCommand'),
};

/**
 * Runs the CLI and resolves its exit code, or -1 for a server that keeps running (the
 * process then lives until a signal stops it).
 */
export async function run(argv: string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '-v' || first === '--version') {
    write(io.stdout, VERSION);
    return 0;
  }
  if (first === '-h' || first === '--help') {
    write(io.stdout, MAIN_HELP);
    return 0;
  }
  if (first === 'help') {
    if (rest[0] && COMMANDS[rest[0]]) return (await COMMANDS[rest[0]]!())([...rest.slice(1), '--help'], io);
    write(io.stdout, MAIN_HELP);
    return 0;
  }
  if (first === undefined || first.startsWith('-')) return (await COMMANDS.gateway!())(argv, io);
  const load = COMMANDS[first];
  if (!load) {
    write(io.stderr, `sessiongate: unknown command "${first}"\n\n${MAIN_HELP}`);
    return 2;
  }
  return (await load())(rest, io);
}

export async function main(argv: string[]): Promise<void> {
  // `sessiongate check … | head`: a reader that went away is not an error of ours
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  try {
    const code = await run(argv, { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
    if (code >= 0) process.exitCode = code;
  } catch (err) {
    process.stderr.write(`sessiongate: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
