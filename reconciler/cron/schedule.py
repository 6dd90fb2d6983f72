"""pg_cron's schedule dialect, the value: `Schedule` (canonical form, next run times, longest period), the
version constants, `CronError`, and the field sets a parsed schedule holds. `cron.parser` builds them.

Run times are computed in UTC (pg_cron's default `cron.timezone` is GMT).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

PG_CRON_1_4 = (1, 4)
PG_CRON_1_5 = (1, 5)
PG_CRON_1_6 = (1, 6)

NEVER = "never"
_CYCLE_DAYS = 146097  # the Gregorian calendar (and the weekday cycle) repeats every 400 years
_MONTH_MAX_DAYS = {m: calendar.monthrange(2000, m)[1] for m in range(1, 13)}  # 2000 is a leap year


class CronError(ValueError):
    """A schedule pg_cron would reject; str(e) is one precise line naming the field and the token."""


# ---------------------------------------------------------------------------------------------------
# The firing rule, reduced to sets


@dataclass(frozen=True)
class CronFields:
    """What a five-field schedule means, simplified so that equal values fire at equal times.

    `day` is how day-of-month and day-of-week combine after simplification (vixie cron: when either
    field starts with '*' a day must match both, otherwise either): "all" (every day), "dom", "dow",
    "and", "or", or "never" (the schedule never fires at all).
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    doms: frozenset[int]
    last_dom: bool
    months: frozenset[int]
    dows: frozenset[int]  # 0-6, Sunday is 0
    day: str


def reduce_fields(
    minutes: set[int],
    hours: set[int],
    doms: set[int],
    last_dom: bool,
    months: set[int],
    dows_raw: set[int],
    dom_star: bool,
    dow_star: bool,
) -> CronFields:
    dows = {d % 7 for d in dows_raw}  # "make sundays equivalent"
    full_dom = set(range(1, 32)) <= doms
    full_dow = len(dows) == 7
    has_dom = bool(doms) or last_dom
    if dom_star or dow_star:  # a day must match both fields
        if not has_dom or not dows:
            day = NEVER
        elif full_dom:
            day = "all" if full_dow else "dow"
        else:
            day = "dom" if full_dow else "and"
    elif full_dom or full_dow:  # either field is enough, and one matches every day
        day = "all"
    elif not has_dom:
        day = "dow" if dows else NEVER
    else:
        day = "or" if dows else "dom"

    if day in ("dom", "and"):  # drop months no listed day exists in, and days no listed month has
        months = {m for m in months if last_dom or any(d <= _MONTH_MAX_DAYS[m] for d in doms)}
        doms = {d for d in doms if any(d <= _MONTH_MAX_DAYS[m] for m in months)}
        if not months:
            day = NEVER
    if not (minutes and hours and months):
        day = NEVER

    if day == NEVER:
        return CronFields(frozenset(), frozenset(), frozenset(), False, frozenset(), frozenset(), NEVER)
    keep_dom = day in ("dom", "and", "or")
    keep_dow = day in ("dow", "and", "or")
    return CronFields(
        minutes=frozenset(minutes),
        hours=frozenset(hours),
        doms=frozenset(doms) if keep_dom else frozenset(),
        last_dom=last_dom if keep_dom else False,
        months=frozenset(months),
        dows=frozenset(dows) if keep_dow else frozenset(),
        day=day,
    )


def _render(values: frozenset[int], low: int, high: int, *, star_ok: bool) -> str:
    """A value set as the shortest deterministic cron text; `*`-forms only where star_ok."""
    v = sorted(values)
    if v == list(range(low, high + 1)):
        return "*"
    if len(v) >= 3:
        step = v[1] - v[0]
        if step > 1 and all(b - a == step for a, b in zip(v, v[1:], strict=False)):
            if star_ok and v[0] == low and v[-1] + step > high:
                return f"*/{step}"
            return f"{v[0]}-{v[-1]}/{step}"
    parts: list[str] = []
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[j + 1] == v[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{v[i]}-{v[j]}")
        else:
            parts.extend(str(x) for x in v[i : j + 1])
        i = j + 1
    return ",".join(parts)


def canonical_text(f: CronFields) -> str:
    if f.day == NEVER:
        return NEVER
    minute = _render(f.minutes, 0, 59, star_ok=True)
    hour = _render(f.hours, 0, 23, star_ok=True)
    month = _render(f.months, 1, 12, star_ok=True)
    suffix = ""
    if f.day == "all":
        dom, dow = "*", "*"
    elif f.day == "dom":
        dom, dow = ("$" if f.last_dom else _render(f.doms, 1, 31, star_ok=True)), "*"
    elif f.day == "dow":
        dom, dow = "*", _render(f.dows, 0, 6, star_ok=True)
    elif f.day == "or":  # neither field may start with '*', or the rule would flip to "and"
        dom = "$" if f.last_dom else _render(f.doms, 1, 31, star_ok=False)
        dow = _render(f.dows, 0, 6, star_ok=False)
    else:  # "and": one field must start with '*' for pg_cron to read it this way
        dom = "$" if f.last_dom else _render(f.doms, 1, 31, star_ok=True)
        dow = _render(f.dows, 0, 6, star_ok=True)
        if not (dom.startswith("*") or dow.startswith("*")):
            suffix = " (day-of-month and day-of-week)"
    return f"{minute} {hour} {dom} {month} {dow}{suffix}"


def _cron_weekday(d: date) -> int:
    return (d.weekday() + 1) % 7


def _day_matches(f: CronFields, day: int, weekday: int, ndays: int) -> bool:
    if f.day == "all":
        return True
    in_dom = day in f.doms or (f.last_dom and day == ndays)
    in_dow = weekday in f.dows
    if f.day == "dom":
        return in_dom
    if f.day == "dow":
        return in_dow
    if f.day == "and":
        return in_dom and in_dow
    return in_dom or in_dow  # "or"


def _matching_days(f: CronFields, year: int, month: int, first_day: int = 1) -> list[int]:
    ndays = calendar.monthrange(year, month)[1]
    days = _month_pattern(f, ndays, _cron_weekday(date(year, month, 1)))
    return [d for d in days if d >= first_day]


@lru_cache(maxsize=4096)
def _month_pattern(f: CronFields, ndays: int, first_weekday: int) -> tuple[int, ...]:
    """The matching days of any month with `ndays` days whose first day is `first_weekday`."""
    return tuple(d for d in range(1, ndays + 1) if _day_matches(f, d, (first_weekday + d - 1) % 7, ndays))


def _times_of_day(f: CronFields) -> list[int]:
    return sorted(h * 60 + m for h in f.hours for m in f.minutes)


def _next_field_runs(f: CronFields, start: datetime, count: int) -> list[datetime]:
    if f.day == NEVER or count <= 0:
        return []
    times = _times_of_day(f)
    start_minute = start.hour * 60 + start.minute  # a run at this minute is not strictly after start
    out: list[datetime] = []
    year, month = start.year, start.month
    months_without_run = 0
    while len(out) < count and months_without_run <= 12 * 400 + 12:
        found = False
        if month in f.months:
            first = start.day if (year, month) == (start.year, start.month) else 1
            for d in _matching_days(f, year, month, first):
                is_first_day = (year, month, d) == (start.year, start.month, start.day)
                for t in times:
                    if is_first_day and t <= start_minute:
                        continue
                    out.append(datetime(year, month, d, t // 60, t % 60, tzinfo=UTC))
                    found = True
                    if len(out) == count:
                        return out
        months_without_run = 0 if found else months_without_run + 1
        month += 1
        if month == 13:
            year, month = year + 1, 1
            if year > 9999:
                break
    return out


@lru_cache(maxsize=512)
def _max_gap(f: CronFields) -> timedelta | None:
    if f.day == NEVER:
        return None
    times = _times_of_day(f)
    within = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0)
    if f.day == "all" and len(f.months) == 12:
        day_gap = 1
    else:
        days: list[int] = []
        for year in range(2000, 2400):  # one whole 400-year cycle
            for month in sorted(f.months):
                base = date(year, month, 1).toordinal()
                days.extend(base + d - 1 for d in _matching_days(f, year, month))
        if not days:
            return None
        day_gap = max(
            max((b - a for a, b in zip(days, days[1:], strict=False)), default=0),
            days[0] + _CYCLE_DAYS - days[-1],  # from the cycle's last run to the next cycle's first
        )
    across = day_gap * 1440 - (times[-1] - times[0])
    return timedelta(minutes=max(within, across))


# ---------------------------------------------------------------------------------------------------
# The public value


@dataclass(frozen=True)
class Schedule:
    """A schedule pg_cron accepts, with what it means.

    `canonical` is a deterministic normal form: two schedules with equal canonical text fire at the same
    times (`*/15` == `0,15,30,45` == `0-59/15`, `7` == `0` in day-of-week, names == numbers, `@daily` ==
    `0 0 * * *`). It is a valid pg_cron schedule except for `never` (a schedule that can never fire)
    and a rare "(day-of-month and day-of-week)" suffix where no '*'-form can express that both must
    match.
    """

    text: str
    form: str  # "fields" | "macro" | "interval"
    min_version: tuple[int, int]
    warnings: tuple[str, ...]
    canonical: str
    _fields: CronFields | None = field(default=None, repr=False, compare=False)
    _seconds: int | None = field(default=None, repr=False, compare=False)

    def next_runs(self, start: datetime, count: int) -> list[datetime]:
        """The next `count` run times strictly after `start`, as aware UTC datetimes.

        `@reboot` has no scheduled times (empty list). An interval job runs every N seconds counted from
        its previous run, not from the clock; this assumes it last ran at `start`.
        """
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be an aware datetime")
        start = start.astimezone(UTC)
        if self._seconds is not None:
            step = timedelta(seconds=self._seconds)
            return [start + step * (i + 1) for i in range(max(count, 0))]
        if self._fields is None:
            return []
        return _next_field_runs(self._fields, start, count)

    def max_period(self) -> timedelta | None:
        """The longest gap between consecutive runs; None for @reboot and schedules that never fire."""
        if self._seconds is not None:
            return timedelta(seconds=self._seconds)
        if self._fields is None:
            return None
        return _max_gap(self._fields)


# ---------------------------------------------------------------------------------------------------
# Parsing
