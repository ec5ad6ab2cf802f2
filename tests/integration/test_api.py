"""The API against real PostgreSQL: the trends and per-region trip metrics on what the real jobs
wrote from the simulator's output (the session's `simulated_run`: Flink, so run under
`flock /tmp/fleet-flink.lock`), checked against the rows the jobs wrote; the other endpoints on
rows inserted here, where the answers the rows imply are known exactly (alarm states a person
sets, silent devices at a given age, cursors over a known order). Auth is enforced and bad input
gets precise 422s."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import httpx
import pytest

from api.app import create_app
from api.models import FleetSource
from api.security import hash_token
from api.settings import Settings
from contracts.metrics import TIRE_POSITIONS
from contracts.records import AlertType
from contracts.thresholds import Thresholds
from contracts.topics import topic_for
from storage.migrate import migrate_up
from tests.support.api_seed import BASE, TOKEN, seed
from tests.support.db_roles import role_url
from tests.support.simulated_run import SimulatedRun

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(pg_url):
    migrate_up(pg_url)
    seed(pg_url)
    # As the API's database role (storage.roles): its grants are tested by every query below.
    settings = Settings(database_url=role_url(pg_url, "api"), api_keys=((_key("operator"),)), pool_max=4)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.pool.wait()
        transport = httpx.ASGITransport(app=app)
        # Sends the key, as every client must by default (anonymous() sends a request without).
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as http:
            yield http


async def anonymous(client: httpx.AsyncClient, method: str, url: str, **kwargs) -> httpx.Response:
    request = client.build_request(method, url, **kwargs)
    del request.headers["authorization"]
    return await client.send(request)


def _key(name):
    from api.security import parse_api_keys

    return parse_api_keys(f"{name}:{hash_token(TOKEN)}")[0]


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_health_ready_and_metrics(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["pending_migrations"] == []
    response = await client.get("/health", headers={"X-Request-ID": "req-42"})
    assert response.headers["x-request-id"] == "req-42"
    metrics = (await client.get("/metrics")).text
    assert 'fleet_api_requests_total{method="GET",route="/health",status="200"}' in metrics


async def test_fleet_list_status_and_pagination(client):
    page = (await client.get("/fleet", params={"limit": 3})).json()
    assert [item["source_id"] for item in page["items"]] == ["bld-1", "bld-2", "hb-1"]
    by_id = {item["source_id"]: item for item in page["items"]}
    assert by_id["bld-1"]["status"] == "alarm" and by_id["bld-1"]["open_alarms"] == 2
    assert by_id["bld-2"]["status"] == "ok" and by_id["bld-2"]["open_alarms"] == 0  # its alarm is cleared
    assert by_id["hb-1"]["status"] == "inactive"
    # The page is rendered by PostgreSQL: same fields and values as the pydantic-built detail.
    assert list(by_id["bld-1"]) == list(FleetSource.model_fields)
    detail = (await client.get("/fleet/bld-1")).json()
    assert {key: detail[key] for key in by_id["bld-1"] if key != "last_seen"} == {
        key: value for key, value in by_id["bld-1"].items() if key != "last_seen"
    }
    assert datetime.fromisoformat(by_id["bld-1"]["last_seen"]) == datetime.fromisoformat(detail["last_seen"])
    empty = (await client.get("/fleet", params={"fleet_id": "no-such-fleet"})).json()
    assert empty == {"items": [], "next_cursor": None}
    rest = (await client.get("/fleet", params={"limit": 3, "cursor": page["next_cursor"]})).json()
    assert [item["source_id"] for item in rest["items"]] == ["veh-1", "veh-2"] and rest["next_cursor"] is None
    assert {i["source_id"]: i["status"] for i in rest["items"]} == {"veh-1": "alarm", "veh-2": "inactive"}
    inactive = (await client.get("/fleet", params={"status": "inactive"})).json()["items"]
    assert [item["source_id"] for item in inactive] == ["hb-1", "veh-2"]
    vehicles = (await client.get("/fleet", params={"kind": "vehicle"})).json()["items"]
    assert [item["source_id"] for item in vehicles] == ["veh-1", "veh-2"]


async def test_fleet_summary_and_detail(client):
    summary = (await client.get("/fleet/summary")).json()
    assert summary == {
        "total": 5,
        "by_status": {"ok": 1, "alarm": 2, "inactive": 2},
        "by_kind": {"vehicle": 2, "building_device": 2, "device": 1},
        "open_alarms_by_severity": {"info": 0, "warning": 2, "critical": 1},
    }
    detail = (await client.get("/fleet/bld-1")).json()
    assert detail["site_id"] == "site-1" and detail["latest"] == {"speed_kmh": 50}
    assert [a["alert_id"] for a in detail["alarms"]] == ["a1", "a2"] and detail["inactivity"] is None
    heartbeat = (await client.get("/fleet/hb-1")).json()
    assert heartbeat["inactivity"]["timeout_s"] == 10 and heartbeat["status"] == "inactive"
    missing = await client.get("/fleet/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


@pytest.fixture
async def run_client(simulated_run: SimulatedRun):
    """The API on the database of the simulated run."""
    url = role_url(simulated_run.url, "api")
    app = create_app(Settings(database_url=url, api_keys=(_key("operator"),), pool_max=2))
    async with app.router.lifespan_context(app):
        await app.state.pool.wait()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as http:
            yield http


def _floor(moment: datetime, unit: timedelta) -> datetime:
    return BASE + (moment - BASE) // unit * unit


async def test_tire_trends_at_each_resolution_on_the_simulated_run(run_client, simulated_run):
    leak = next(a for a in simulated_run.expectations.alerts if a.alert_type == AlertType.TIRE_PRESSURE_LOW)
    source, tire = leak.source_id, leak.detail  # the leaking tire (the alarm's detail)
    since, until = _floor(simulated_run.start, timedelta(hours=1)), simulated_run.end + timedelta(hours=1)
    span = {"since": since.isoformat(), "until": until.isoformat()}
    window = {"metric": "pressure_kpa", "tire": tire, **span}

    async def points(resolution: str, **change) -> list[tuple]:
        response = await run_client.get(
            f"/sources/{source}/trends", params={**window, **change, "resolution": resolution}
        )
        assert response.status_code == 200, response.text
        assert (response.json()["metric"], response.json()["tire"]) == ("pressure_kpa", change.get("tire", tire))
        return [
            (datetime.fromisoformat(p["time"]), p["avg"], p["min"], p["max"], p["count"])
            for p in response.json()["points"]
        ]

    raw = await points("raw")
    readings = simulated_run.query(
        "SELECT time, value FROM readings WHERE source_id = %s AND metric = 'pressure_kpa' AND tire = %s ORDER BY time",
        (source, tire),
    )
    assert [(t, v) for t, v, *_ in raw] == readings and len(readings) > 20
    assert min(v for _, v in readings) < Thresholds().rule_for(AlertType.TIRE_PRESSURE_LOW).threshold  # the leak
    minute = await points("1m")
    windows = simulated_run.query(
        "SELECT window_start, avg, min, max, count FROM aggregates WHERE source_id = %s AND metric = 'pressure_kpa'"
        " AND tire = %s AND window_s = 60 ORDER BY window_start",
        (source, tire),
    )
    assert [(t, low, high, n) for t, _, low, high, n in minute] == [(t, low, high, n) for t, _, low, high, n in windows]
    assert all(math.isclose(got[1], want[1], rel_tol=1e-12) for got, want in zip(minute, windows, strict=True))
    # 5m and 15m roll the jobs' 1-minute windows up; 1h and 1d read the rollups of the readings.
    for resolution in ("5m", "15m", "1h", "1d"):
        change = {"since": _floor(simulated_run.start, timedelta(days=1)).isoformat()} if resolution == "1d" else {}
        rolled = await points(resolution, **change)
        assert sum(p[4] for p in rolled) == len(readings), resolution
        assert (min(p[2] for p in rolled), max(p[3] for p in rolled)) == (
            min(r[2] for r in windows),
            max(r[3] for r in windows),
        )
        total = sum(p[1] * p[4] for p in rolled)
        assert math.isclose(total, sum(v for _, v in readings), rel_tol=1e-9), resolution
    # Another tire of the vehicle is a series of its own.
    other = next(position for position in TIRE_POSITIONS if position != tire)
    assert [(t, v) for t, v, *_ in await points("raw", tire=other)] == simulated_run.query(
        "SELECT time, value FROM readings WHERE source_id = %s AND metric = 'pressure_kpa' AND tire = %s ORDER BY time",
        (source, other),
    )
    # A building's temperature takes no tire; a vehicle's needs one.
    building = next(a.source_id for a in simulated_run.expectations.alerts if a.alert_type == AlertType.CO2_HIGH)
    response = await run_client.get(
        f"/sources/{building}/trends", params={**span, "metric": "temperature_c", "resolution": "5m"}
    )
    assert response.status_code == 200 and response.json()["points"] and response.json()["tire"] is None
    # Its 1m is finer than the windows the jobs write for buildings (5 and 15 min): from its readings.
    response = await run_client.get(
        f"/sources/{building}/trends", params={**span, "metric": "temperature_c", "resolution": "1m"}
    )
    temperatures = simulated_run.query(
        "SELECT time, value FROM readings WHERE source_id = %s AND metric = 'temperature_c'", (building,)
    )
    points = response.json()["points"]
    assert response.status_code == 200 and sum(p["count"] for p in points) == len(temperatures) > 0
    assert len(points) == len({_floor(t, timedelta(minutes=1)) for t, _ in temperatures})
    response = await run_client.get(f"/sources/{source}/trends", params={**span, "metric": "temperature_c"})
    assert response.status_code == 422 and "FL, FR, RL, RR" in response.json()["detail"][0]["msg"]


async def test_trend_bad_input_is_named(client):
    response = await client.get("/sources/veh-1/trends", params={"metric": "battery_pct", "resolution": "2m"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "resolution"]
    response = await client.get("/sources/veh-1/trends", params={"metric": "DROP TABLE"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "metric"]
    assert "battery_pct, co2_ppm" in response.json()["detail"][0]["msg"]  # the metrics there are
    # What the jobs wrote before the tire dimension (0013): the tire is a parameter now.
    response = await client.get("/sources/veh-1/trends", params={"metric": "pressure_kpa.FL"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "metric"]
    tireless = await client.get("/sources/veh-1/trends", params={"metric": "pressure_kpa"})
    assert tireless.status_code == 422 and tireless.json()["detail"][0]["loc"] == ["query", "tire"]
    assert "tire is required" in tireless.json()["detail"][0]["msg"] and "FL, FR, RL, RR, RLI, RRI" in tireless.text
    unknown = await client.get("/sources/veh-1/trends", params={"metric": "pressure_kpa", "tire": "XX"})
    assert unknown.status_code == 422 and "unknown tire 'XX'; one of: FL, FR" in unknown.text
    untired = await client.get("/sources/veh-1/trends", params={"metric": "speed_kmh", "tire": "FL"})
    assert untired.status_code == 422 and "pressure_kpa, temperature_c only" in untired.text
    dotted = await client.get("/sources/veh-1/trends", params={"metric": "driving.event.odometer_km"})
    assert dotted.status_code == 200 and dotted.json()["points"] == []
    too_long = {"metric": "fare", "resolution": "1m", "since": "2020-01-01T00:00:00Z", "until": "2021-01-01T00:00:00Z"}
    response = await client.get("/sources/veh-1/trends", params=too_long)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "since"]
    naive = await client.get("/sources/veh-1/trends", params={"metric": "fare", "since": "2025-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["detail"][0]["loc"] == ["query", "since"]
    reversed_range = {"metric": "fare", "since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"}
    assert (await client.get("/sources/veh-1/trends", params=reversed_range)).status_code == 422


async def test_alarm_filters_and_cursor_pages(client):
    everything = (await client.get("/alarms")).json()
    assert [a["alert_id"] for a in everything["items"]] == ["a3", "a1", "a2", "a4"]
    pages, cursor = [], None
    while True:
        page = (await client.get("/alarms", params={"limit": 1, **({"cursor": cursor} if cursor else {})})).json()
        pages += [a["alert_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == ["a3", "a1", "a2", "a4"]
    open_alarms = (await client.get("/alarms", params=[("status", "active"), ("status", "acknowledged")])).json()
    assert {a["alert_id"] for a in open_alarms["items"]} == {"a1", "a2", "a4"}
    critical = (await client.get("/alarms", params={"severity": "critical"})).json()["items"]
    assert [a["alert_id"] for a in critical] == ["a2"]
    typed = (await client.get("/alarms", params={"alert_type": "speeding", "source_id": "veh-1"})).json()["items"]
    assert [a["alert_id"] for a in typed] == ["a4"]
    timed = {"since": (BASE + timedelta(hours=4)).isoformat(), "until": (BASE + timedelta(hours=6)).isoformat()}
    assert [a["alert_id"] for a in (await client.get("/alarms", params=timed)).json()["items"]] == ["a1", "a2"]
    assert (await client.get("/alarms/a2")).json()["severity"] == "critical"
    assert (await client.get("/alarms/zzz")).status_code == 404


async def test_alarm_bad_input(client):
    response = await client.get("/alarms", params={"status": "open"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "status", 0]
    response = await client.get("/alarms", params={"limit": 100000})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "limit"]
    response = await client.get("/alarms", params={"cursor": "not-a-cursor"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "cursor"]
    response = await client.get("/alarms", params={"source_id": "x' OR '1'='1"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "source_id"]


async def test_alarm_counts(client):
    by_type = (await client.get("/alarms/counts")).json()
    assert by_type["total"] == 4 and set(by_type["counts"]) == {t.value for t in AlertType}
    assert by_type["counts"]["co2_high"] == 1 and by_type["counts"]["battery_low"] == 0
    by_status = (await client.get("/alarms/counts", params={"by": "status"})).json()["counts"]
    assert by_status == {"active": 2, "acknowledged": 1, "cleared": 1}
    open_by_severity = (await client.get("/alarms/counts", params={"by": "severity", "status": "active"})).json()
    assert open_by_severity["counts"] == {"info": 0, "warning": 1, "critical": 1}


async def test_acknowledge_and_clear_need_a_key(client):
    assert (await anonymous(client, "POST", "/alarms/a1/acknowledge")).status_code == 401
    wrong = await client.post("/alarms/a1/acknowledge", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/alarms/a1")).json()["status"] == "active"  # nothing changed
    acked = await client.post("/alarms/a1/acknowledge", headers=AUTH)
    assert acked.status_code == 200
    body = acked.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "operator" and body["acknowledged_at"]
    again = await anonymous(client, "POST", "/alarms/a1/acknowledge", headers={"X-API-Key": TOKEN})
    assert again.status_code == 200 and again.json()["acknowledged_at"] == body["acknowledged_at"]
    cleared = await client.post("/alarms/a1/clear", headers=AUTH)
    assert cleared.json()["status"] == "cleared" and cleared.json()["cleared_at"]
    assert (await client.post("/alarms/a1/clear", headers=AUTH)).status_code == 409
    assert (await client.post("/alarms/a1/acknowledge", headers=AUTH)).status_code == 409
    assert (await client.post("/alarms/missing/clear", headers=AUTH)).status_code == 404


async def test_reads_need_a_key_by_default(pg_url):
    migrate_up(pg_url)
    app = create_app(Settings(database_url=pg_url, api_keys=(_key("grafana"),)))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert (await http.get("/alarms")).status_code == 401
        assert (await http.get("/alarms", headers=AUTH)).status_code == 200
        assert (await http.get("/health")).status_code == 200  # probes stay open
        secured = (await http.get("/openapi.json")).json()["paths"]["/fleet"]["get"]
        assert {"HTTPBearer": []} in secured["security"] and {"APIKeyHeader": []} in secured["security"]
        assert {"401", "403"} <= set(secured["responses"])


async def test_reads_open_when_opted_out_and_writes_still_need_a_key(pg_url):
    migrate_up(pg_url)
    app = create_app(Settings(database_url=pg_url, api_keys=(_key("grafana"),), read_auth=False))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        assert (await http.get("/fleet")).status_code == 200
        assert (await http.post("/alarms/a1/acknowledge")).status_code == 401
        paths = (await http.get("/openapi.json")).json()["paths"]
    assert "security" not in paths["/fleet"]["get"] and "401" not in paths["/fleet"]["get"]["responses"]
    assert {"HTTPBearer": []} in paths["/alarms/{alert_id}/acknowledge"]["post"]["security"]


async def test_heatmaps(client):
    window = {"since": BASE.isoformat(), "until": (BASE + timedelta(days=2)).isoformat()}
    hourly = (await client.get("/heatmaps/alarms/hourly", params=window)).json()["cells"]
    assert hourly == [
        {"day": "2025-03-03", "hour": 1, "count": 3},
        {"day": "2025-03-04", "hour": 13, "count": 1},
    ]
    zones = (await client.get("/heatmaps/alarms/zones", params=window)).json()["cells"]
    assert zones == [
        {"site_id": "site-1", "zone_id": "zone-a", "count": 2},
        {"site_id": "site-1", "zone_id": "zone-b", "count": 1},
    ]
    co2 = (await client.get("/heatmaps/alarms/zones", params={**window, "alert_type": "co2_high"})).json()["cells"]
    assert co2 == [{"site_id": "site-1", "zone_id": "zone-a", "count": 1}]
    too_wide = await client.get("/heatmaps/alarms/hourly", params={"since": "2020-01-01T00:00:00Z"})
    assert too_wide.status_code == 422 and too_wide.json()["detail"][0]["loc"] == ["query", "since"]


async def test_inactive_devices_now(client):
    body = (await client.get("/devices/inactive")).json()
    assert body["count"] == 1 and body["items"][0]["device_id"] == "hb-1"
    assert 19 <= body["items"][0]["silent_for_s"] < 120


async def test_driving_kpis(client):
    window = {"since": BASE.isoformat(), "until": (BASE + timedelta(hours=1)).isoformat()}
    body = (await client.get("/kpis/driving", params=window)).json()
    assert body["window_s"] == 300
    veh1, veh2 = body["vehicles"]
    assert veh1 == {
        "source_id": "veh-1",
        "interventions": 2,
        "disengagements": 1,
        "distance_km": 80.0,
        "km_per_intervention": 40.0,
        "interventions_per_1000km": 25.0,
    }
    assert veh2["km_per_intervention"] is None and veh2["interventions_per_1000km"] == 0.0
    assert body["fleet"]["km_per_intervention"] == 50.0 and body["fleet"]["interventions_per_1000km"] == 20.0


async def test_region_trip_metrics_in_every_window_on_the_simulated_run(run_client, simulated_run):
    totals = dict(
        simulated_run.query("SELECT region_id, sum(trips)::int FROM trip_metrics WHERE window_s = 60 GROUP BY 1")
    )
    assert totals and sum(totals.values()) <= simulated_run.expectations.events_per_topic[topic_for("trip")]
    window = {
        "since": _floor(simulated_run.start, timedelta(hours=1)).isoformat(),
        "until": (simulated_run.end + timedelta(hours=1)).isoformat(),
    }
    for region, trips in totals.items():
        # 1m and 5m are written by the jobs (contracts.windows.TRIP_WINDOWS_S); 15m rolls 5m up.
        for name, base in (("1m", 60), ("5m", 300), ("15m", 300)):
            body = (await run_client.get(f"/metrics/region/{region}", params={**window, "window": name})).json()
            assert body["base_window_s"] == base and body["windows"], (region, name)
            assert sum(w["trips"] for w in body["windows"]) == trips, (region, name)
            revenue = sum(w["revenue"] for w in body["windows"])
            assert math.isclose(
                revenue,
                simulated_run.query(
                    "SELECT sum(revenue) FROM trip_metrics WHERE region_id = %s AND window_s = 60", (region,)
                )[0][0],
                rel_tol=1e-9,
            )
    unknown = (await run_client.get("/metrics/region/no-such-region", params=window)).json()
    assert unknown["windows"] == [] and unknown["base_window_s"] is None
    bad = await run_client.get(f"/metrics/region/{region}", params={"window": "7m"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "window"]
    assert "'1m', '5m', '15m', '1h' or '1d'" in bad.json()["detail"][0]["msg"]
