"""API keys are stored hashed and matched in constant time, each with its role and fleets (the
older `name:sha256hex` form still reads); `python -m api.keys` makes entries the parser reads back;
cursors round-trip or fail with 422."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from api.keys import main as make_key
from api.params import decode_cursor, encode_cursor
from api.security import Role, hash_token, identify, key_entry, new_token, parse_api_keys
from api.settings import Settings


def test_keys_match_by_hash_only():
    token = new_token()
    keys = parse_api_keys(f"ops:{hash_token(token)}, grafana:{hash_token('other')}")
    assert identify(token, keys).name == "ops"
    assert identify("other", keys).name == "grafana"
    assert identify(token + "x", keys) is None
    assert token not in repr(keys) and hash_token(token) not in repr(keys)


SECRET = "fm_s3cr3t-t0ken-value-nobody-may-see"


@pytest.mark.parametrize(
    "entry",
    [SECRET, "ops:" + SECRET, SECRET + ":" + "z" * 64, ":" + "a" * 64, "ops:" + "g" * 64, "ops team:" + "a" * 64],
)
def test_malformed_key_entries_are_named_by_position_without_their_text(entry):
    good = f"ops:{hash_token('t')}"
    with pytest.raises(ValueError, match="name:sha256hex") as error:
        parse_api_keys(f"{good}, {entry}")
    message = str(error.value)
    assert "API_KEYS entry 2: " in message and "python -m api.keys" in message
    # Not even a fragment of the entry: the first 20 characters used to be echoed.
    assert not any(entry[i : i + 4] in message for i in range(len(entry) - 3) if entry[i : i + 4].strip(":"))


def test_keys_carry_their_role_and_fleets_and_the_older_form_keeps_its_access():
    keys = parse_api_keys(
        ", ".join(
            [
                f"legacy:{hash_token('l')}",
                key_entry("grafana", "g", Role.READ, ["fleet-a", "depot:7"]),  # a fleet id may hold a colon
                key_entry("root", "r", "admin", None),
            ]
        )
    )
    legacy, grafana, root = keys
    # The older form: every fleet, role operate (what such a key could do before keys had a scope).
    assert (legacy.role, legacy.fleets, legacy.fleet_list) == (Role.OPERATE, None, None)
    assert legacy.may(Role.OPERATE) and not legacy.may(Role.ADMIN)
    assert grafana.role == Role.READ and grafana.fleet_list == ["depot:7", "fleet-a"]
    assert grafana.may(Role.READ) and not grafana.may(Role.OPERATE)
    assert root.fleets is None and all(root.may(role) for role in Role)
    assert identify("g", keys) == grafana and identify("r", keys) == root


@pytest.mark.parametrize(
    ("tail", "field"),
    [
        (f":root:{SECRET}", "the role must be one of read, operate, admin"),
        (f":read:{SECRET} x", "the fleets must be * (every fleet) or fleet ids"),
        (":read:", "the fleets must be"),
        (f":read:a+{SECRET}+", "the fleets must be"),
        (f":{SECRET}", "expected 4 (name:sha256hex:role:fleets) or 2 (name:sha256hex)"),
    ],
)
def test_malformed_role_or_fleets_name_the_field_and_what_is_allowed(tail, field):
    entry = f"ops:{hash_token('t')}{tail}"
    with pytest.raises(ValueError) as error:
        parse_api_keys(entry)
    message = str(error.value)
    assert message.startswith("API_KEYS entry 1: ") and field in message
    assert SECRET[:8] not in message and hash_token("t")[:8] not in message


def test_key_cli_round_trips_through_the_parser(capsys):
    assert make_key(["--name", "grafana", "--role", "read", "--fleet", "fleet-b", "--fleet", "fleet-a"]) == 0
    lines = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    token, entry = lines["token"].strip(), lines["API_KEYS entry"].strip()
    (key,) = parse_api_keys(entry)
    assert identify(token, (key,)) == key and token not in entry
    assert (key.name, key.role, key.fleet_list) == ("grafana", Role.READ, ["fleet-a", "fleet-b"])
    assert make_key(["--name", "ops", "--role", "admin", "--all-fleets"]) == 0
    (admin,) = parse_api_keys(capsys.readouterr().out.splitlines()[1].split(":", 1)[1].strip())
    assert admin.role == Role.ADMIN and admin.fleets is None


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--name", "x", "--role", "root", "--all-fleets"], "choose from 'read', 'operate', 'admin'"),
        (["--name", "x", "--role", "read"], "one of the arguments --fleet --all-fleets is required"),
        (["--name", "x", "--role", "read", "--fleet", "a", "--all-fleets"], "not allowed with argument"),
        (["--name", "x y", "--role", "read", "--all-fleets"], "--name must be 1-64 letters"),
        (["--name", "x", "--role", "read", "--fleet", "a+b"], "--fleet must be 1-128 letters"),
        (["--role", "read", "--all-fleets"], "the following arguments are required: --name"),
    ],
)
def test_key_cli_bad_flags_say_what_is_allowed(capsys, argv, named):
    with pytest.raises(SystemExit) as exit_info:
        make_key(argv)
    assert exit_info.value.code == 2 and named in capsys.readouterr().err


def test_key_cli_help_names_every_role(capsys):
    with pytest.raises(SystemExit) as exit_info:
        make_key(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert all(f"{role.value}:" in out for role in Role) and "--all-fleets" in out and "--fleet FLEET" in out


def test_keys_file_entries_are_named_by_line(tmp_path, monkeypatch):
    path = tmp_path / "keys"
    path.write_text(f"# comment\nops:{hash_token('t')}\n{SECRET}\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("API_KEYS_FILE", str(path))
    monkeypatch.delenv("API_KEYS", raising=False)
    with pytest.raises(ValueError, match="API_KEYS_FILE entry 3: ") as error:
        Settings.from_env()
    assert SECRET[:6] not in str(error.value)


def test_secure_defaults(monkeypatch):
    for name in ("API_READ_AUTH", "API_METRICS_AUTH", "API_DOCS_AUTH", "API_KEYS", "API_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env(database_url="postgresql://db/x")
    assert settings.read_auth and not settings.metrics_auth and not settings.docs_auth
    assert settings.pool_timeout_s <= 5 and settings.max_concurrency > 0 and settings.max_header_bytes <= 64 * 1024
    monkeypatch.setenv("API_READ_AUTH", "false")
    assert not Settings.from_env(database_url="postgresql://db/x").read_auth
    monkeypatch.setenv("API_POOL_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="API_POOL_TIMEOUT_S must be a positive number"):
        Settings.from_env(database_url="postgresql://db/x")


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("API_KEYS", f"ops:{hash_token('t')}")
    monkeypatch.setenv("API_READ_AUTH", "yes")
    monkeypatch.setenv("API_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings.from_env()
    assert settings.read_auth and settings.cors_origins == ("https://a.example", "https://b.example")
    monkeypatch.setenv("API_READ_AUTH", "perhaps")
    with pytest.raises(ValueError, match="API_READ_AUTH"):
        Settings.from_env()


def test_cursor_round_trip_and_rejection():
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    assert decode_cursor(encode_cursor(moment, "a1"), (datetime, str)) == [moment, "a1"]
    bad_cursors = (
        "%%%",
        encode_cursor("x"),
        encode_cursor("2025-01-01T00:00:00", "a1"),
        encode_cursor(moment, "a\x00"),  # PostgreSQL text holds no NUL: was a 500 (DataError)
        encode_cursor("0001-01-01T00:00:00+00:00", "a1"),
    )
    for bad in bad_cursors:
        with pytest.raises(HTTPException) as error:
            decode_cursor(bad, (datetime, str))
        assert error.value.status_code == 422 and error.value.detail[0]["loc"] == ["query", "cursor"]


def test_api_cli_rejects_bad_flags(capsys):
    from api.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "70000", "--database-url", "postgresql://x"])
    assert exit_info.value.code == 2 and "--port" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--bogus"])


def test_api_help_lists_every_setting_with_its_variable_description_and_default(capsys):
    """The flags are generated from api.settings.Settings: each field is an option with its
    description, default and environment variable (API_KEYS stays environment-only)."""
    from api.__main__ import main
    from contracts.settings import env_name, flag

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, field in Settings.model_fields.items():
        if name == "api_keys":
            assert "--api-keys" not in text
            continue
        assert flag(Settings, name) in text and env_name(Settings, name) in text and field.description in text
        if not field.is_required():
            assert f"(default: {field.default})" in text or f"(default: {str(field.default).lower()})" in text


def test_api_cli_errors_name_flag_and_variable_and_never_echo_secrets(capsys, monkeypatch):
    from api.__main__ import main

    monkeypatch.setenv("API_KEYS", f"ops:{SECRET}")
    monkeypatch.setenv("API_POOL_MAX", "0")
    monkeypatch.setenv("API_READ_AUTH", "maybe")
    with pytest.raises(SystemExit) as exit_info:
        main(["--database-url", f"postgresql://api:{SECRET}@db/x"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and SECRET[:6] not in err
    assert "API_KEYS entry 1: " in err and "--pool-max / API_POOL_MAX must be" in err and "API_READ_AUTH" in err
    monkeypatch.delenv("API_KEYS")
    monkeypatch.delenv("API_POOL_MAX")
    monkeypatch.delenv("API_READ_AUTH")
    with pytest.raises(SystemExit):
        main(["--database-url", ""])
    assert "--database-url / DATABASE_URL" in capsys.readouterr().err
