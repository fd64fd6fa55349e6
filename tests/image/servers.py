"""The image test's outside world, on 127.0.0.1: a JWKS server and an upstream.

    python3 servers.py WORKDIR

Makes an RSA key with the openssl command (no Python packages needed), writes to WORKDIR:
  key.pem          the private key
  token            an RS256 access token for the test pool, scope image-test/read, 10 minutes
  ports            "JWKS_PORT UPSTREAM_PORT", written last (by rename) once both listen
then serves until killed. The JWKS server answers /jwks.json. The upstream answers any GET
with JSON: {"upstream": "image-test", "path": ..., "x-auth-sub": <that header or null>}.
"""

import base64
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POOL = "local-1_ImagePool"
ISSUER = f"https://cognito-idp.local-1.amazonaws.com/{POOL}"
CLIENT = "image-client"
KID = "image-kid"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args: str, data: bytes = b"") -> bytes:
    return subprocess.run(["openssl", *args], input=data, check=True, capture_output=True).stdout


def main() -> None:
    work = sys.argv[1]
    key = os.path.join(work, "key.pem")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    modulus = openssl("rsa", "-in", key, "-noout", "-modulus").decode().strip()
    assert modulus.startswith("Modulus="), modulus
    n = bytes.fromhex(modulus[len("Modulus="):])
    jwks = json.dumps(
        {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
                   "n": b64url(n), "e": b64url((65537).to_bytes(3, "big"))}]}
    ).encode()

    now = int(time.time())
    header = {"alg": "RS256", "kid": KID, "typ": "JWT"}
    claims = {"sub": CLIENT, "token_use": "access", "scope": "image-test/read", "iss": ISSUER,
              "client_id": CLIENT, "iat": now, "auth_time": now, "exp": now + 600,
              "jti": "image-jti", "version": 2}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    ).encode()
    # RS256 = RSASSA-PKCS1-v1_5 with SHA-256, which is what `openssl dgst -sign` makes.
    signature = openssl("dgst", "-sha256", "-sign", key, data=signing_input)
    with open(os.path.join(work, "token"), "w") as f:
        f.write(signing_input.decode() + "." + b64url(signature))

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/jwks.json":
                self.answer(200, jwks)
            else:
                self.answer(404, b"not found\n")

        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Upstream(Jwks):
        def do_GET(self) -> None:
            body = {"upstream": "image-test", "path": self.path,
                    "x-auth-sub": self.headers.get("x-auth-sub")}
            self.answer(200, json.dumps(body).encode())

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Jwks, Upstream)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    ports = os.path.join(work, "ports")
    with open(ports + ".tmp", "w") as f:
        f.write(" ".join(str(s.server_address[1]) for s in servers) + "\n")
    os.rename(ports + ".tmp", ports)
    threading.Event().wait()


if __name__ == "__main__":
    main()
