#!/bin/sh
# docker compose's one-shot "setup" service: on first start, creates the X-Session key
# and the demo users in the shared volume; on every start, prints the demo passwords.
# Files are private to uid 1000, the user every service of the stack runs as.
set -eu
dir=${SESSIONGATE_STATE_DIR:-/var/lib/sessiongate}
sg="node ${SESSIONGATE_BIN:-/app/gateway/bin/sessiongate.js}"
umask 077

if [ ! -s "$dir/x-session-keys.json" ]; then
  # HS256: the Python example verifies with the shared secret (stdlib has no Ed25519)
  $sg keys generate --alg HS256 --kid compose-demo > "$dir/x-session-keys.json.tmp"
  mv "$dir/x-session-keys.json.tmp" "$dir/x-session-keys.json"
  echo "setup: created the X-Session key in $dir/x-session-keys.json"
fi

if [ ! -s "$dir/users.yaml" ]; then
  : > "$dir/demo-passwords.txt"
  for spec in alice:user bob:user,admin dave:analyst,billing; do
    name=${spec%%:*}
    roles=${spec#*:}
    password=$(node -e 'process.stdout.write(require("node:crypto").randomBytes(9).toString("base64url"))')
    printf '%s\n' "$password" | SESSIONGATE_USERS="$dir/users.yaml" SESSIONGATE_SCRYPT_COST=14 $sg users add "$name" --roles "$roles"
    printf '  %-6s %s   roles %s\n' "$name" "$password" "$roles" >> "$dir/demo-passwords.txt"
  done
fi

echo "Demo users (demo only; kept in the volume until \`docker compose down -v\`):"
cat "$dir/demo-passwords.txt"
