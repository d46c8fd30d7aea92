import { parseArgs } from 'node:util';
import { generateKeySet, type SigningAlg } from '@sessiongate/session';

const KEYS_USAGE = `Usage: sessiongate keys <command>

Manages the keys that sign the X-Session header (X_SESSION_KEYS).

Commands:
  generate [--alg EdDSA|HS256] [--kid ID]   print a new signing key

Run "sessiongate keys generate --help" for details.
`;

const GENERATE_USAGE = `Usage: sessiongate keys generate [--alg EdDSA|HS256] [--kid ID]

Prints a new X-Session signing key as a one-line JWK set, ready to be the value of
X_SESSION_KEYS (or of the file it names). The output is secret: keep it out of logs,
shell history and git.

Options:
  --alg EdDSA|HS256  signing algorithm (default: EdDSA)
                       EdDSA  Ed25519 key pair: the gateway alone holds the private key;
                              upstreams verify with the public keys it serves at
                              GET /.well-known/jwks.json, so there is no shared secret
                              to hand out, and an upstream cannot forge an X-Session.
                       HS256  one shared secret that the gateway and every upstream
                              must hold; whoever can verify can also forge.
  --kid ID           key id, sent as "kid" in every X-Session header
                     (default: today's date and a random suffix, e.g. 2025-01-31-9f86d081)
  -h, --help         show this help

Rotating keys (the first key of X_SESSION_KEYS signs; every key in the set verifies):
  1. Generate a new key and add it SECOND, after the key that signs today:
       X_SESSION_KEYS='{"keys":[<old key>,<new key>]}'
     on every gateway AND the auth service (it verifies X-Session with the same set);
     restart them. Nothing signs with the new key yet; EdDSA gateways now publish it.
  2. Wait until every upstream knows the new key. EdDSA: at least 5 minutes, the
     JWKS's Cache-Control max-age. HS256: give every upstream the new secret.
  3. Move the new key to the FRONT, '{"keys":[<new key>,<old key>]}', everywhere;
     restart every gateway and the auth service. The new key signs from now on.
  4. Once X_SESSION_TTL (60s by default) has passed since the last gateway restarted,
     remove the old key everywhere (upstreams too, for HS256).

Example:
  sessiongate keys generate --alg EdDSA --kid 2025-q1 > /run/secrets/x-session-keys.json
`;

const ALGS: Readonly<Record<string, SigningAlg>> = { eddsa: 'EdDSA', hs256: 'HS256' };

/**
 * `sessiongate keys ...`; `argv` holds the arguments after `keys`. Resolves to the exit
 * code: 0 done, 2 usage error.
 */
export async function keysCommand(
  argv: string[],
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    io.stdout.write(KEYS_USAGE);
    return 0;
  }
  if (command !== 'generate') {
    io.stderr.write(command === undefined ? KEYS_USAGE : `sessiongate keys: unknown command "${command}"\n\n${KEYS_USAGE}`);
    return 2;
  }

  let values: { alg?: string | undefined; kid?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { alg: { type: 'string' }, kid: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return usageError(io, err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    io.stdout.write(GENERATE_USAGE);
    return 0;
  }

  const alg = ALGS[(values.alg ?? 'EdDSA').toLowerCase()];
  if (alg === undefined) return usageError(io, `--alg must be EdDSA or HS256, not ${JSON.stringify(values.alg)}`);
  // The kid travels in a JSON header and in logs: keep it a plain token.
  if (values.kid !== undefined && !/^[\x21-\x7e]{1,128}$/.test(values.kid)) {
    return usageError(io, '--kid must be 1 to 128 visible ASCII characters, no spaces');
  }

  io.stdout.write(`${JSON.stringify(generateKeySet(alg, values.kid))}\n`);
  if ((io.stdout as { isTTY?: boolean }).isTTY) {
    io.stderr.write(
      'This is a private signing key: store it as a secret and set X_SESSION_KEYS to it (or to a file holding it).\n' +
        'To rotate, add it second to the set in force, then move it first: see "sessiongate keys generate --help".\n',
    );
  }
  return 0;
}

function usageError(io: { stderr: NodeJS.WritableStream }, message: string): number {
  io.stderr.write(`sessiongate keys generate: ${message}\nRun "sessiongate keys generate --help" for usage.\n`);
  return 2;
}
