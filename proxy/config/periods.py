"""Budget periods (``budget.period`` in the config) and the window of time each one covers.

The config names a period; the store keys spend by the window's id.
"""

from __future__ import annotations

import calendar
import enum
import time


class Period(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    TOTAL = "total"

    def window(self, now: float) -> tuple[str, float | None]:
        """The id of the budget period containing ``now`` (UTC) and when it ends (None: never).

        Every admission asks this for every scope, so the current window is cached until it ends.
        """
        cached = _WINDOWS.get(self)
        if cached is not None and cached[0] <= now < cached[1]:
            return cached[2], cached[1]
        period, ends = self._window(now)
        if ends is not None:
            # Valid from a moment known to lie inside this window: today's UTC midnight for daily and
            # weekly windows, ``now`` itself for months.
            inside = now if self is Period.MONTHLY else now - (now % 86400.0)
            _WINDOWS[self] = (inside, ends, period)
        return period, ends

    def _window(self, now: float) -> tuple[str, float | None]:
        t = time.gmtime(now)
        if self is Period.DAILY:
            start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
            return time.strftime("d%Y%m%d", t), start + 86400.0
        if self is Period.WEEKLY:  # ISO weeks start on Monday
            day_start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
            start = day_start - t.tm_wday * 86400
            iso = time.strftime("%G%V", t)
            return f"w{iso}", start + 7 * 86400.0
        if self is Period.MONTHLY:
            year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
            return time.strftime("m%Y%m", t), float(calendar.timegm((year, month, 1, 0, 0, 0)))
        return "total", None


_WINDOWS: dict[Period, tuple[float, float, str]] = {}  # period -> (valid from, valid until, id)
