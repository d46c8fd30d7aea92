import type { CliIo } from '@sessiongate/service-kit';
import {
  KeyLayout,
  SessionStore,
  createRedisClient,
  describeConnection,
  redisOptionsFromEnv,
  sessionSettingsFromEnv,
  waitUntilReady,
} from '@sessiongate/session';

/** How long the CLI waits for Redis before it warns that live sessions were not updated. @default 3000 */
export const CLI_REDIS_WAIT_MS = 3000;
/** A command of the CLI may take this long unless REDIS_COMMAND_TIMEOUT says otherwise. @default 2000 */
export const CLI_REDIS_COMMAND_TIMEOUT_MS = 2000;

/** What the change is about, for the warning when Redis cannot be reached. */
export interface LiveSessionChange {
  /** The user whose sessions change. */
  user: string;
  /** What is true of those sessions when the change does not reach them, e.g. `are still valid`. */
  stale: string;
  /** What failed, said instead of the users file warning (for commands that change no file). */
  failed?: (why: string) => string;
}

/**
 * Applies a change to a user's live sessions in Redis, connected with the same settings as
 * the services. Resolves null (after a warning) when Redis cannot be reached: the file is
 * changed either way.
 */
export async function liveSessions(
  io: CliIo,
  env: NodeJS.ProcessEnv,
  change: LiveSessionChange,
  run: (store: SessionStore) => Promise<number>,
): Promise<number | null> {
  const settings = sessionSettingsFromEnv(env);
  const options = redisOptionsFromEnv(env, { connectionName: 'sessiongate-users-cli', commandTimeoutMs: CLI_REDIS_COMMAND_TIMEOUT_MS });
  const where = describeConnection(options.connection);
  const client = createRedisClient(options);
  let lastError: string | undefined;
  client.on('error', (err: Error) => {
    lastError = err.message;
  });
  const warn = (why: string): null => {
    if (change.failed) {
      io.stderr.write(`${change.failed(why)}\n`);
      return null;
    }
    io.stderr.write(
      `warning: the users file is changed, but ${why}: live sessions of ${change.user} ${change.stale}.\n` +
        `Run the command again once Redis is reachable (running auth services also apply it when they reload the file).\n`,
    );
    return null;
  };
  try {
    if (!(await waitUntilReady(client, CLI_REDIS_WAIT_MS))) {
      return warn(`Redis (${where}) did not answer within ${CLI_REDIS_WAIT_MS / 1000} s${lastError ? ` (${lastError})` : ''}`);
    }
    return await run(new SessionStore(client, new KeyLayout(settings.keyPrefix)));
  } catch (err) {
    return warn(`updating live sessions in Redis (${where}) failed (${(err as Error).message})`);
  } finally {
    // quit() politely when connected; a client still trying to connect just stops
    if (client.status === 'ready') await client.quit().catch(() => client.disconnect());
    else client.disconnect();
  }
}
