#!/usr/bin/env python3
"""Provisions Cognito user pools in a running moto server and prints tokens it issued.

    python3 tests/interop/moto_fixture.py --endpoint http://127.0.0.1:PORT [--region eu-west-1]

Everything is created over moto's AWS API (boto3 for the admin calls); the tokens come from
a raw `InitiateAuth` (`USER_PASSWORD_AUTH`) HTTP request, the one a client would send to
`https://cognito-idp.<region>.amazonaws.com/`, so the wire format is exercised, not only
boto3's view of it.

Pool A: resource server `dotnet-demo` (scope `dotnet`); client A1 without a secret and
client A2 with a secret (both ALLOW_USER_PASSWORD_AUTH); user `alice` (permanent password,
group `readers`) and user `bob` (no group).
Pool B: one client and a user also called `alice`, so only the issuer tells the two apart.

Prints ONE JSON object on stdout (diagnostics go to stderr); exits non-zero on any failure.
Credentials are dummies (moto accepts any); set AWS_ACCESS_KEY_ID etc. to override.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.request

PASSWORDS = {
    "alice": "Alice-Interop-1!",
    "bob": "Bob-Interop-1!",
    "pool_b_alice": "Other-Alice-1!",
}


def die(msg):
    print(f"moto_fixture: {msg}", file=sys.stderr)
    sys.exit(1)


def secret_hash(client_id, client_secret, username):
    """SECRET_HASH = Base64(HMAC-SHA256(key = client secret, message = username + client id))."""
    mac = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def initiate_auth(endpoint, client_id, username, password, client_secret=None):
    """The raw InitiateAuth request (USER_PASSWORD_AUTH); returns the AuthenticationResult."""
    params = {"USERNAME": username, "PASSWORD": password}
    if client_secret:
        params["SECRET_HASH"] = secret_hash(client_id, client_secret, username)
    body = json.dumps(
        {"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client_id, "AuthParameters": params}
    ).encode()
    req = urllib.request.Request(
        endpoint.rstrip("/") + "/",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = json.load(resp)
    except urllib.error.HTTPError as e:
        die(f"InitiateAuth for {username!r} (client {client_id}): HTTP {e.code}: {e.read()!r}")
    result = out.get("AuthenticationResult")
    if not result or "AccessToken" not in result or "IdToken" not in result:
        die(f"InitiateAuth for {username!r}: no tokens in the answer: {out!r}")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", required=True, help="moto server, e.g. http://127.0.0.1:5000")
    ap.add_argument("--region", default="eu-west-1")
    args = ap.parse_args()
    endpoint = args.endpoint.rstrip("/")

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ.setdefault(k, v)

    try:
        import boto3
        import moto
    except ImportError as e:
        die(f"{e}: install the pinned test tools (./test.sh does: 'moto[server]', boto3)")

    idp = boto3.client("cognito-idp", endpoint_url=endpoint, region_name=args.region)

    def pool(name):
        pool_id = idp.create_user_pool(PoolName=name)["UserPool"]["Id"]
        return {
            "id": pool_id,
            "issuer": f"https://cognito-idp.{args.region}.amazonaws.com/{pool_id}",
            "jwks_url": f"{endpoint}/{pool_id}/.well-known/jwks.json",
        }

    def client(pool_id, name, secret):
        c = idp.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=name,
            GenerateSecret=secret,
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]
        return c["ClientId"], c.get("ClientSecret")

    def user(pool_id, username, password, groups=()):
        idp.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS")
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username=username, Password=password, Permanent=True
        )
        for g in groups:
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=g)
        attrs = idp.admin_get_user(UserPoolId=pool_id, Username=username)["UserAttributes"]
        sub = next((a["Value"] for a in attrs if a["Name"] == "sub"), None)
        if not sub:
            die(f"AdminGetUser {username!r}: no sub attribute: {attrs!r}")
        return {"username": username, "password": password, "sub": sub, "groups": list(groups)}

    # Pool A.
    a = pool("interop-a")
    idp.create_resource_server(
        UserPoolId=a["id"],
        Identifier="dotnet-demo",
        Name="dotnet-demo",
        Scopes=[{"ScopeName": "dotnet", "ScopeDescription": "the demo API"}],
    )
    a1, _ = client(a["id"], "a1-password-no-secret", secret=False)
    a2, a2_secret = client(a["id"], "a2-password-with-secret", secret=True)
    if not a2_secret:
        die("CreateUserPoolClient GenerateSecret=True returned no ClientSecret")
    idp.create_group(UserPoolId=a["id"], GroupName="readers")
    alice = user(a["id"], "alice", PASSWORDS["alice"], groups=["readers"])
    bob = user(a["id"], "bob", PASSWORDS["bob"])
    a.update({"client_a1": a1, "client_a2": a2, "client_a2_secret": a2_secret})

    # Pool B: same region, same user name; moto signs it with the same key as pool A.
    b = pool("interop-b")
    b1, _ = client(b["id"], "b1-password-no-secret", secret=False)
    b_alice = user(b["id"], "alice", PASSWORDS["pool_b_alice"])
    b.update({"client": b1})

    alice_a1 = initiate_auth(endpoint, a1, "alice", alice["password"])
    alice_a2 = initiate_auth(endpoint, a2, "alice", alice["password"], client_secret=a2_secret)
    bob_a1 = initiate_auth(endpoint, a1, "bob", bob["password"])
    alice_b = initiate_auth(endpoint, b1, "alice", b_alice["password"])

    out = {
        "moto_version": moto.__version__,
        "endpoint": endpoint,
        "region": args.region,
        "pool_a": a,
        "pool_b": b,
        "users": {"alice": alice, "bob": bob, "pool_b_alice": b_alice},
        "tokens": {
            "alice_access": alice_a1["AccessToken"],
            "alice_id": alice_a1["IdToken"],
            "bob_access": bob_a1["AccessToken"],
            "pool_b_access": alice_b["AccessToken"],
            "alice_access_a2": alice_a2["AccessToken"],
        },
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
