"""API keys are stored hashed and matched in constant time; cursors round-trip or fail with 422."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import HTTPException

from api.params import decode_cursor, encode_cursor
from api.security import hash_token, identify, new_token, parse_api_keys
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
    assert "API_KEYS entry 2 " in message and "python -m api.keys" in message
    # Not even a fragment of the entry: the first 20 characters used to be echoed.
    assert not any(entry[i : i + 4] in message for i in range(len(entry) - 3) if entry[i : i + 4].strip(":"))


def test_keys_file_entries_are_named_by_line(tmp_path, monkeypatch):
    path = tmp_path / "keys"
    path.write_text(f"# comment\nops:{hash_token('t')}\n{SECRET}\n")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db/x")
    monkeypatch.setenv("API_KEYS_FILE", str(path))
    monkeypatch.delenv("API_KEYS", raising=False)
    with pytest.raises(ValueError, match="API_KEYS_FILE entry 3 ") as error:
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
    with pytest.raises(ValueError, match="API_POOL_TIMEOUT_S must be a positive float"):
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
