"""The end-to-end benchmark's verdict: keeping pace means reading what is generated without the
backlog growing; sustaining the rate also means not trailing a standing backlog."""

from __future__ import annotations

import pytest

from tests.bench.bench_e2e import _slope, verdict


def window(processed: float, start: int, end: int, generated: float = 20_000) -> dict:
    return {
        "events_generated_per_s": generated,
        "events_processed_per_s": processed,
        "backlog_at_start": start,
        "backlog_at_end": end,
    }


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (window(19_990, 15_000, 14_000), (True, True)),  # caught up, about 1 s in flight
        (window(20_400, 581_620, 573_165), (True, False)),  # keeps pace 29 s behind
        (window(17_442, 528_869, 697_280), (False, False)),  # falls further behind
        (window(19_000, 10_000, 12_000), (False, False)),  # reads 5 % less than generated
    ],
)
def test_verdict(figures, expected):
    assert verdict(figures) == expected


def test_rates_are_least_squares_slopes():
    # Counts refreshed every other sample (as Flink's REST figures are) still give the rate.
    points = [(t, 1000 * (t - t % 2)) for t in range(0, 61)]
    assert _slope(points) == pytest.approx(1000, rel=0.02)
