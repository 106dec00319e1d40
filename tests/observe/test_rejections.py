"""The tally of requests the gateway refused before admission (``proxy.observe.rejections``): only the
refusal statuses count, per minute and status, a range selects minutes, and old minutes are dropped."""

from __future__ import annotations

from proxy.observe.rejections import KEEP, Rejections

T0 = 1_700_000_000.0  # a minute boundary plus 20 s


def test_counts_refusals_per_minute_and_status() -> None:
    tally = Rejections()
    for status in (401, 401, 403, 404, 429, 200, 400, 500, 502):
        tally.record(status, T0)
    tally.record(429, T0 + 60)
    minute = int(T0 // 60 * 60)
    assert sorted(tally.between(None, None)) == [
        (minute, 401, 2),
        (minute, 403, 1),
        (minute, 404, 1),
        (minute, 429, 1),
        (minute + 60, 429, 1),
    ]
    assert [r for r in tally.between(T0 + 50, None)] == [(minute + 60, 429, 1)]
    assert sorted(tally.between(None, minute + 60))[-1] == (minute, 429, 1)


def test_minutes_older_than_the_longest_range_are_dropped() -> None:
    tally = Rejections()
    tally.record(401, T0)
    tally.record(401, T0 + KEEP + 7200)  # a later refusal prunes what is older than KEEP
    assert [status for _, status, _ in tally.between(None, None)] == [401]
    assert len(tally.buckets) == 1
