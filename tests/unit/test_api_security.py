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
    assert identify(token, keys) == "ops"
    assert identify("other", keys) == "grafana"
    assert identify(token + "x", keys) is None
    assert token not in repr(keys)


@pytest.mark.parametrize("entry", ["ops", "ops:abc", ":" + "a" * 64, "ops:" + "g" * 64])
def test_malformed_key_entries_are_refused(entry):
    with pytest.raises(ValueError, match="name:sha256hex"):
        parse_api_keys(entry)


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
    for bad in ("%%%", encode_cursor("x"), encode_cursor("2025-01-01T00:00:00", "a1")):
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
