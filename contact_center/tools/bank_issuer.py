"""An example of what the bank's servers do: sign a customer's identity for the contact center.

    CC_BANK_TOKEN_SECRET=... python -m contact_center.tools.bank_issuer \\
        --id C-1029 --name "Mei Chan" --vip --lang yue --url https://help.bank.example

prints a token valid for two minutes (and, with --url, the address the bank's app opens). The
secret stays on the bank's servers: the app asks them for a token when the customer taps
"talk to us", never holds the secret itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

import jwt


def issue(
    secret: str,
    *,
    customer_id: str,
    name: str,
    vip: bool = False,
    lang: str = "en",
    ttl_s: int = 120,
    now: float | None = None,
) -> str:
    """An HS256 token with the claims the contact center reads (README, Signed customer identity)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": customer_id,
        "name": name,
        "vip": vip,
        "lang": lang,
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,  # one token, one sign-in
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", required=True, help="the bank's customer id")
    parser.add_argument("--name", required=True, help="the customer's display name")
    parser.add_argument("--vip", action="store_true")
    parser.add_argument("--lang", choices=["en", "zh", "yue"], default="en")
    parser.add_argument("--ttl", type=int, default=120, help="seconds the token is valid")
    parser.add_argument("--url", help="the contact center's address: print the page to open")
    args = parser.parse_args(argv)
    secret = os.environ.get("CC_BANK_TOKEN_SECRET", "")
    if len(secret) < 32:
        print("set CC_BANK_TOKEN_SECRET to the shared secret (32 characters or more)", file=sys.stderr)
        return 2
    token = issue(
        secret, customer_id=args.id, name=args.name, vip=args.vip, lang=args.lang, ttl_s=args.ttl
    )
    print(f"{args.url.rstrip('/')}/#bank_token={token}" if args.url else token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
