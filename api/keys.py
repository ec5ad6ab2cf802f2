"""Make an API key: prints the token once (give it to the client) and its API_KEYS entry.

    python -m api.keys --name grafana --role read --fleet fleet-a --fleet fleet-b
    python -m api.keys --name ops --role operate --all-fleets

Only the entry (the token's SHA-256, the role, the fleets) goes into the API's configuration; the
token is shown here once and stored nowhere.
"""

from __future__ import annotations

import argparse
import re
import sys

from api.security import FLEET_PATTERN, NAME_PATTERN, Role, key_entry, new_token

_ROLE_HELP = {
    Role.READ: "every data route of its fleets",
    Role.OPERATE: "read, and acknowledge/clear alarms and see their audit",
    Role.ADMIN: "everything",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m api.keys",
        description="Generate an API key: its token (shown once) and the API_KEYS entry to configure.",
        epilog="Roles: " + "; ".join(f"{role.value}: {text}" for role, text in _ROLE_HELP.items()) + ".",
    )
    parser.add_argument("--name", required=True, help="who the key is for: 1-64 letters, digits, '.', '_' or '-'")
    parser.add_argument(
        "--role", required=True, choices=[role.value for role in Role], help="what the key may do (see Roles below)"
    )
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--fleet",
        action="append",
        metavar="FLEET",
        help="a fleet the key may see (repeat for several); letters, digits, '.', '_', ':' or '-'",
    )
    scope.add_argument("--all-fleets", action="store_true", help="the key sees every fleet")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not re.fullmatch(NAME_PATTERN, args.name):
        parser.error("--name must be 1-64 letters, digits, '.', '_' or '-'")
    for fleet in args.fleet or ():
        if not re.fullmatch(FLEET_PATTERN, fleet):
            parser.error("--fleet must be 1-128 letters, digits, '.', '_', ':' or '-' (or use --all-fleets)")
    token = new_token()
    fleets = None if args.all_fleets else sorted(set(args.fleet))
    print(f"token:          {token}")
    print(f"API_KEYS entry: {key_entry(args.name, token, args.role, fleets)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
