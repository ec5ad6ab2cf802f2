"""The database roles' LOGIN users for tests: each component's tests connect as its role, so the
grants of migration 0015_roles are tested by the real queries, not by a list kept beside them."""

from __future__ import annotations

import psycopg

from storage.roles import ROLES, ensure_login_users, login_url

PASSWORDS = {key: f"test-{key}-password" for key in ROLES}


def role_urls(admin_url: str) -> dict[str, str]:
    """Role key -> URL of its LOGIN user on the database of `admin_url` (migrated already)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        ensure_login_users(conn, PASSWORDS)
    return {key: login_url(admin_url, key, password) for key, password in PASSWORDS.items()}


def role_url(admin_url: str, key: str) -> str:
    return role_urls(admin_url)[key]
