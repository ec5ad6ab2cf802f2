"""Make an API key: prints the token once (give it to the client) and its API_KEYS entry.

python -m api.keys --name grafana
"""

from __future__ import annotations

import argparse
import re
import sys

from api.security import NAME_PATTERN, hash_token, new_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.keys", description="Generate an API key and its hash.")
    parser.add_argument("--name", required=True, help="who the key is for (letters, digits, . _ -)")
    args = parser.parse_args(argv)
    if not re.fullmatch(NAME_PATTERN, args.name):
        parser.error("--name must be 1-64 letters, digits, '.', '_' or '-'")
    token = new_token()
    print(f"token:         {token}")
    print(f"API_KEYS entry: {args.name}:{hash_token(token)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
