"""The shared log line format: one JSON object per line, extras kept, tracebacks included."""

import json
import logging

from contracts import jsonlog


def test_log_lines_are_json_with_extras_and_tracebacks(capsys):
    jsonlog.configure("info")
    log = logging.getLogger("fleet.test")
    log.debug("hidden below the level")
    log.info("alarm raised", extra={"alert_id": "a-1", "count": 3})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("write failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["msg"] for line in lines] == ["alarm raised", "write failed"]
    assert lines[0] | {"ts": None} == {
        "ts": None,
        "level": "info",
        "logger": "fleet.test",
        "msg": "alarm raised",
        "alert_id": "a-1",
        "count": 3,
    }
    assert lines[0]["ts"].endswith("Z")
    assert "RuntimeError: boom" in lines[1]["exc"]
