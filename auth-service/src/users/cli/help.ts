import { DEFAULT_USERS_FILE } from '../../config.js';
import { MAX_PASSWORD_BYTES, MIN_PASSWORD_LENGTH } from '../password.js';
import { MAX_PROFILE_BYTES, MAX_PROFILE_FIELDS } from '../users-file.js';
import { CLI_REDIS_WAIT_MS } from './live-sessions.js';

// The text of `sessiongate users --help` and of each command's --help.

const FILE_OPTION = `  --file PATH          the users file (SESSIONGATE_USERS, default ${DEFAULT_USERS_FILE})
  -h, --help           show this help`;

const LIVE_SESSIONS = `Live sessions follow at once: the command updates them in Redis (REDIS_URL, or the
Sentinel/Cluster settings, and SESSIONGATE_REDIS_PREFIX, as for the service). If Redis
cannot be reached within ${CLI_REDIS_WAIT_MS / 1000} s, the file is still changed, a warning is printed and
the exit code is 1; running services apply the change when they reload the file.`;

export const USERS_HELP = `Usage: sessiongate users <command> [options]

Manages the auth service's users file (SESSIONGATE_USERS, default ${DEFAULT_USERS_FILE}).
Passwords are read from standard input, never from arguments: typed at a prompt (twice,
not echoed) on a terminal, or the first line of what is piped in.

Commands:
  add NAME [--roles a,b] [--disabled] [--profile key=value]...
                       add a user (creates the file if needed)
  set-roles NAME a,b   replace a user's roles; live sessions get them at once
  disable NAME         disable a user and end their live sessions
  enable NAME          enable a disabled user
  set-password NAME    change a user's password and end their live sessions
  list [--json]        list users, roles and status
  remove NAME          remove a user and end their live sessions

Run "sessiongate users <command> --help" for details.
Exit codes: 0 done, 1 failed (or Redis unreachable: see the command's help), 2 usage error.
`;


/** Usage line and help of each command. */
export const SUBCOMMAND_HELP = {
  add: {
    usage: 'sessiongate users add NAME [--roles a,b] [--disabled] [--profile key=value]...',
    help: `Adds a user. The password is read from standard input (prompted twice on a terminal,
else the first line), at least ${MIN_PASSWORD_LENGTH} characters and at most ${MAX_PASSWORD_BYTES} bytes; it is
stored as a scrypt hash (N=2^SESSIONGATE_SCRYPT_COST, default 2^17, r=8, p=1).

NAME: lower case a-z, 0-9 and . _ @ + -, at most 64 characters; it is the user id (sub).

Options:
  --roles a,b          the user's roles (default: none)
  --disabled           add the user disabled (cannot log in until enabled)
  --profile key=value  a profile field, put into every session of the user as a claim
                       (repeatable; e.g. --profile name="Ada L." --profile email=ada@example.com;
                       at most ${MAX_PROFILE_FIELDS} fields, ${MAX_PROFILE_BYTES} bytes in all as JSON)
${FILE_OPTION}

Example:
  printf '%s\\n' "$PASSWORD" | sessiongate users add ada --roles user,admin --profile email=ada@example.com`,
  },
  'set-roles': {
    usage: 'sessiongate users set-roles NAME a,b',
    help: `Replaces a user's roles ("" for none). Sessions keep their expiry; a role change takes
effect on the user's next request, without a new login.

${LIVE_SESSIONS}

Options:
${FILE_OPTION}`,
  },
  disable: {
    usage: 'sessiongate users disable NAME',
    help: `Disables a user: they cannot log in, and their live sessions end now.

${LIVE_SESSIONS}

Options:
${FILE_OPTION}`,
  },
  enable: {
    usage: 'sessiongate users enable NAME',
    help: `Enables a disabled user.

Options:
${FILE_OPTION}`,
  },
  'set-password': {
    usage: 'sessiongate users set-password NAME [--keep-sessions]',
    help: `Sets a new password, read from standard input (prompted twice on a terminal, else the
first line), and ends the user's live sessions (a reset usually means the old password was
at risk).

${LIVE_SESSIONS}

Options:
  --keep-sessions      leave the user's live sessions alone
${FILE_OPTION}`,
  },
  list: {
    usage: 'sessiongate users list [--json]',
    help: `Lists users with their roles and status. Never shows password hashes.

Options:
  --json               one JSON document instead of a table
${FILE_OPTION}`,
  },
  remove: {
    usage: 'sessiongate users remove NAME',
    help: `Removes a user from the file and ends their live sessions.

${LIVE_SESSIONS}

Options:
${FILE_OPTION}`,
  },
} as const satisfies Record<string, { usage: string; help: string }>;

/** A command of `sessiongate users`. */
export type SubcommandName = keyof typeof SUBCOMMAND_HELP;
