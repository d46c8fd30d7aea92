#!/usr/bin/env python3
"""An upstream service behind sessiongate, in Python with the standard library only.

It trusts the user only through the signed X-Session header (a JWT, HS256), which it
verifies itself: no cookie, no Redis, no sessiongate code, no third-party package.

Environment:
  X_SESSION_KEYS_FILE  required: a JWK set file holding the gateway's shared HS256 secret(s)
                       (kty "oct"); the token's "kid" picks the key, so rotation just works
  EXPECTED_AUD         reports: the name of the route in routes.yaml that forwards here
  X_SESSION_ISSUER     sessiongate
  HOST, PORT           127.0.0.1, 4002

With PyJWT the whole of verify() is one call:
  jwt.decode(token, key, algorithms=["HS256"], audience=aud, issuer=iss, leeway=5,
             options={"require": ["exp", "iat", "sub"]})
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SERVICE = "python-upstream"
# clock skew tolerated between the gateway and this service, in seconds
LEEWAY_SECONDS = 5
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class InvalidToken(Exception):
    """The X-Session is missing, malformed, forged, expired or not meant for us."""


def b64url_decode(part: str) -> bytes:
    if not _B64URL.match(part) or len(part) % 4 == 1:
        raise InvalidToken("not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as err:
        raise InvalidToken("not base64url") from err


def load_keys(path: str) -> dict:
    """kid -> secret bytes, for the HS256 ("oct") keys of a JWK set file."""
    with open(path, encoding="utf-8") as f:
        jwks = json.load(f)
    keys = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") == "oct" and jwk.get("alg", "HS256") == "HS256" and isinstance(jwk.get("kid"), str):
            secret = b64url_decode(jwk["k"])
            if len(secret) < 32:
                raise ValueError(f"key {jwk['kid']!r} is shorter than 32 bytes")
            keys[jwk["kid"]] = secret
    if not keys:
        raise ValueError(f"{path} holds no HS256 (kty oct) key")
    return keys


def verify(token: str, keys: dict, issuer: str, audience: str, now: float = None) -> dict:
    """The claims of a valid X-Session, else raises InvalidToken naming the failed check."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except ValueError as err:
        raise InvalidToken("bad header") from err
    # the algorithm is pinned here, never taken from the token ("none", RS/HS confusion)
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise InvalidToken("alg must be HS256")
    key = keys.get(header.get("kid"))
    if key is None:
        raise InvalidToken("unknown kid")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    expected = hmac.new(key, signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, b64url_decode(parts[2])):  # constant time
        raise InvalidToken("bad signature")

    try:
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as err:
        raise InvalidToken("bad payload") from err
    if not isinstance(claims, dict):
        raise InvalidToken("bad payload")
    now = time.time() if now is None else now
    if claims.get("iss") != issuer:
        raise InvalidToken("wrong iss")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise InvalidToken("wrong aud")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool) or now >= exp + LEEWAY_SECONDS:
        raise InvalidToken("expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, (int, float)) or now < nbf - LEEWAY_SECONDS):
        raise InvalidToken("not yet valid")
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or now < iat - LEEWAY_SECONDS:
        raise InvalidToken("issued in the future")
    roles = claims.get("roles")
    if not isinstance(claims.get("sub"), str) or not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("no sub or roles")
    return claims


class Handler(BaseHTTPRequestHandler):
    server_version = SERVICE
    keys: dict = {}
    issuer = "sessiongate"
    audience = "reports"

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            return self.send_json(200, {"status": "ok"})
        token = self.headers.get("X-Session")
        if not token:
            return self.send_json(401, {"error": "unauthenticated", "message": "X-Session is missing: call this service through the gateway"})
        try:
            claims = verify(token, self.keys, self.issuer, self.audience)
        except InvalidToken as err:
            return self.send_json(401, {"error": "unauthenticated", "message": f"X-Session rejected: {err}"})
        user = {"sub": claims["sub"], "roles": claims["roles"]}
        self.send_json(200, {"service": SERVICE, "route": self.audience, "method": self.command, "path": path, "user": user,
                             "report": {"title": "monthly revenue", "preparedFor": claims["sub"]}})

    do_HEAD = do_GET

    def log_message(self, fmt: str, *args) -> None:
        # the request line only: never a header (X-Session is a credential for 60 s)
        sys.stdout.write(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}\n")
        sys.stdout.flush()


def main() -> int:
    keys_file = os.environ.get("X_SESSION_KEYS_FILE")
    if not keys_file:
        print(f"{SERVICE}: X_SESSION_KEYS_FILE is required (a JWK set file with the gateway's HS256 key)", file=sys.stderr)
        return 1
    try:
        Handler.keys = load_keys(keys_file)
    except (OSError, ValueError, InvalidToken) as err:
        print(f"{SERVICE}: X_SESSION_KEYS_FILE: {err}", file=sys.stderr)
        return 1
    Handler.issuer = os.environ.get("X_SESSION_ISSUER") or "sessiongate"
    Handler.audience = os.environ.get("EXPECTED_AUD") or "reports"
    host = os.environ.get("HOST") or "127.0.0.1"
    port = int(os.environ.get("PORT") or 4002)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{SERVICE} listening on http://{host}:{server.server_address[1]} (HS256, {len(Handler.keys)} key(s), aud {Handler.audience})", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
