"""The pg_cron schedule dialect: parse, normalise, and compute run times. Pure code, no I/O.

Where it sits: the manifest loader calls `parse()` to validate every job's schedule against the pg_cron
version the database runs (errors become manifest problems, warnings are shown by `reconcile validate`);
the job kind calls `normalise()` on the live `cron.job.schedule` text so that drift is judged on meaning,
not spelling (`*/15` and `0,15,30,45` are the same schedule); `reconcile validate --show-next` and the
verify checks call `Schedule.next_runs()` and `Schedule.max_period()` (how long a job may go without a
run before it is stale).

The grammar mirrors pg_cron's own parser (`parse_cron_entry` in src/entry.c, a copy of vixie cron's
`load_entry`, and `TryParseInterval` in src/job_metadata.c) character by character, including its
quirks: whatever follows the fifth field is ignored, junk after `*` or after a number is skipped while
letters or digits glued to a number are not, and a three-letter name is matched case-insensitively.
Run times are computed in UTC (pg_cron's default `cron.timezone` is GMT).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

__all__ = [
    "PG_CRON_1_4",
    "PG_CRON_1_5",
    "PG_CRON_1_6",
    "CronError",
    "Schedule",
    "normalise",
    "parse",
]

PG_CRON_1_4 = (1, 4)
PG_CRON_1_5 = (1, 5)
PG_CRON_1_6 = (1, 6)

_CLASSIC = (1, 0)
_INTERVAL_SINCE = PG_CRON_1_5  # CHANGELOG v1.5.0: "scheduling a job with a 1-59 second interval"
_LAST_DOM_SINCE = PG_CRON_1_6  # CHANGELOG v1.6.0: "scheduling on the last day of the month"
_STEP_LIMIT_SINCE = PG_CRON_1_6  # observed: 1.6 rejects */60, 1.4.2 accepts it

_MAX_SCHEDULE_BYTES = 999  # MAX_FILE_BUFFER_LENGTH - 1 in include/cron.h
_END = "\0"  # pg_cron's get_char() returns '\0' at the end of the buffer, never EOF
_BLANKS = (" ", "\t")  # Is_Blank()
_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale, as sscanf skips it

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")

# (name in messages, low, high, names accepted or None)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...] | None], ...] = (
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 7, _DOW_NAMES),
)

_MACROS = ("yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly", "reboot", "restart")
_REBOOT = "@reboot"
_NEVER = "never"
_CYCLE_DAYS = 146097  # the Gregorian calendar (and the weekday cycle) repeats every 400 years
_MONTH_MAX_DAYS = {m: calendar.monthrange(2000, m)[1] for m in range(1, 13)}  # 2000 is a leap year


class CronError(ValueError):
    """A schedule pg_cron would reject; str(e) is one precise line naming the field and the token."""


# ---------------------------------------------------------------------------------------------------
# The firing rule, reduced to sets


@dataclass(frozen=True)
class _Fields:
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


def _reduce(
    minutes: set[int],
    hours: set[int],
    doms: set[int],
    last_dom: bool,
    months: set[int],
    dows_raw: set[int],
    dom_star: bool,
    dow_star: bool,
) -> _Fields:
    dows = {d % 7 for d in dows_raw}  # "make sundays equivalent"
    full_dom = set(range(1, 32)) <= doms
    full_dow = len(dows) == 7
    has_dom = bool(doms) or last_dom
    if dom_star or dow_star:  # a day must match both fields
        if not has_dom or not dows:
            day = _NEVER
        elif full_dom:
            day = "all" if full_dow else "dow"
        else:
            day = "dom" if full_dow else "and"
    elif full_dom or full_dow:  # either field is enough, and one matches every day
        day = "all"
    elif not has_dom:
        day = "dow" if dows else _NEVER
    else:
        day = "or" if dows else "dom"

    if day in ("dom", "and"):  # drop months no listed day exists in, and days no listed month has
        months = {m for m in months if last_dom or any(d <= _MONTH_MAX_DAYS[m] for d in doms)}
        doms = {d for d in doms if any(d <= _MONTH_MAX_DAYS[m] for m in months)}
        if not months:
            day = _NEVER
    if not (minutes and hours and months):
        day = _NEVER

    if day == _NEVER:
        return _Fields(frozenset(), frozenset(), frozenset(), False, frozenset(), frozenset(), _NEVER)
    keep_dom = day in ("dom", "and", "or")
    keep_dow = day in ("dow", "and", "or")
    return _Fields(
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


def _canonical(f: _Fields) -> str:
    if f.day == _NEVER:
        return _NEVER
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


def _day_matches(f: _Fields, day: int, weekday: int, ndays: int) -> bool:
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


def _matching_days(f: _Fields, year: int, month: int, first_day: int = 1) -> list[int]:
    ndays = calendar.monthrange(year, month)[1]
    days = _month_pattern(f, ndays, _cron_weekday(date(year, month, 1)))
    return [d for d in days if d >= first_day]


@lru_cache(maxsize=4096)
def _month_pattern(f: _Fields, ndays: int, first_weekday: int) -> tuple[int, ...]:
    """The matching days of any month with `ndays` days whose first day is `first_weekday`."""
    return tuple(d for d in range(1, ndays + 1) if _day_matches(f, d, (first_weekday + d - 1) % 7, ndays))


def _times_of_day(f: _Fields) -> list[int]:
    return sorted(h * 60 + m for h in f.hours for m in f.minutes)


def _next_field_runs(f: _Fields, start: datetime, count: int) -> list[datetime]:
    if f.day == _NEVER or count <= 0:
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
def _max_gap(f: _Fields) -> timedelta | None:
    if f.day == _NEVER:
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
    _fields: _Fields | None = field(default=None, repr=False, compare=False)
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

    def is_equivalent(self, other: Schedule) -> bool:
        return self.canonical == other.canonical


# ---------------------------------------------------------------------------------------------------
# Parsing


def _version_text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _quote(s: str, limit: int = 40) -> str:
    return '"' + (s if len(s) <= limit else s[: limit - 3] + "...") + '"'


class _Reader:
    """pg_cron's in-memory FILE: get() yields the next character, then '\\0' forever."""

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def get(self) -> str:
        i = self.pos
        self.pos += 1
        return self.text[i] if i < len(self.text) else _END

    @property
    def at(self) -> int:
        """Index of the character get() returned last."""
        return self.pos - 1


class _EntryParser:
    def __init__(self, text: str, start: int, version: tuple[int, int]) -> None:
        self.r = _Reader(text, start)
        self.text = text
        self.version = version
        self.warnings: list[str] = []
        self.min_version = _CLASSIC
        self.field = 0
        self.field_start = 0

    # -- helpers -------------------------------------------------------------------------------------
    def _field_text(self) -> str:
        end = self.field_start
        while end < len(self.text) and self.text[end] not in " \t\n":
            end += 1
        return self.text[self.field_start : end]

    def _error(self, message: str) -> CronError:
        return CronError(f"{_FIELDS[self.field][0]} field: {message}")

    def _skip_blanks(self, ch: str) -> str:
        while ch in _BLANKS:
            ch = self.r.get()
        return ch

    # -- vixie cron's get_number / get_range / get_list ----------------------------------------------
    def _get_number(self, ch: str, names: tuple[str, ...] | None, low: int, what: str) -> tuple[int, str]:
        begin = self.r.at
        while ch != _END and ch.isascii() and ch.isalnum():
            ch = self.r.get()
        token = self.text[begin : self.r.at]
        if not token:
            if ch == "$" and self.field == 2:
                raise self._error(
                    f'"$" (last day of month) must be the whole field, got {_quote(self._field_text())}'
                )
            if what == "step":
                m = re.match(r"-\d+", self.text[begin:])
                if m:
                    raise self._error(f"step {m.group()} must be positive")
                raise self._error(f"{_quote(self._field_text())} has a step without a number")
            if what == "range end":
                raise self._error(f"{_quote(self._field_text())} has a range without an end")
            if what == "list item":
                raise self._error(f"{_quote(self._field_text())} has an empty list item")
            if ch == _END and begin == self.field_start:
                raise CronError(f"expected 5 fields, got {self.field}")
            if ch == "\n":
                raise self._error("unexpected line break")
            kinds = 'a number, a three-letter name or "*"' if names else 'a number or "*"'
            raise self._error(f"{_quote(self._field_text())} does not start with {kinds}")
        if names:
            for i, name in enumerate(names):
                if token.lower() == name:
                    return i + low, ch
        if token.isdigit():
            return int(token), ch
        if what == "step":
            raise self._error(f"step {_quote(token)} is not a number")
        kinds = "a number or a three-letter name" if names else "a number"
        raise self._error(f"{_quote(token)} is not {kinds}")

    def _check_in_range(self, n: int) -> None:
        _, low, high, _ = _FIELDS[self.field]
        if not low <= n <= high:
            raise self._error(f"{n} is out of range {low}-{high}")

    def _get_range(self, ch: str, values: set[int], what: str) -> str:
        _, low, high, names = _FIELDS[self.field]
        begin = self.r.at
        star = ch == "*"
        if star:
            n1, n2 = low, high
            ch = self.r.get()
        else:
            n1, ch = self._get_number(ch, names, low, what)
            if ch != "-":
                if ch == "/":
                    raise self._error(
                        f'a step must follow "*" or a range, not a single number ({_quote(self._field_text())})'
                    )
                self._check_in_range(n1)
                values.add(n1)
                return ch
            ch = self.r.get()
            n2, ch = self._get_number(ch, names, low, "range end")
        step = 1
        if ch == "/":
            ch = self.r.get()
            step, ch = self._get_number(ch, None, 0, "step")
            if step <= 0:
                raise self._error(f"step {step} must be positive")
        self._check_in_range(n1)
        self._check_in_range(n2)
        item = self.text[begin : self.r.at]
        if step > high:
            if self.version >= _STEP_LIMIT_SINCE:
                raise self._error(f"step {step} is larger than the field's maximum {high}")
            self.warnings.append(
                f"{_FIELDS[self.field][0]} field: step {step} is larger than the field's maximum {high}"
                f" (pg_cron 1.6 rejects it)"
            )
        if n1 > n2:
            self.warnings.append(
                f"{_FIELDS[self.field][0]} field: range {_quote(item)} is reversed and matches nothing"
            )
        values.update(range(n1, n2 + 1, step))
        return ch

    def _get_list(self, ch: str) -> tuple[set[int], str]:
        values: set[int] = set()
        what = "first"
        while True:
            ch = self._get_range(ch, values, what)
            if ch != ",":
                break
            ch = self.r.get()
            what = "list item"
        junk_start = self.r.at
        while ch not in (" ", "\t", "\n", _END):  # Skip_Nonblanks
            ch = self.r.get()
        junk = self.text[junk_start : self.r.at]
        if junk:
            kept = self.text[self.field_start : junk_start]
            hint = " (pg_cron has no nth-weekday syntax)" if junk.startswith("#") else ""
            self.warnings.append(
                f"{_FIELDS[self.field][0]} field: {_quote(junk)} after {_quote(kept)} is ignored{hint}"
            )
        return values, self._skip_blanks(ch)

    # -- parse_cron_entry ------------------------------------------------------------------------------
    def parse(self) -> tuple[str, _Fields | None]:
        ch = self.r.get()
        if ch == "@":
            return "macro", self._macro()
        sets: list[set[int]] = []
        stars: list[bool] = []
        last_dom = False
        for index in range(5):
            self.field = index
            self.field_start = self.r.at
            if index == 2 and ch == "$":
                if self.version < _LAST_DOM_SINCE:
                    raise CronError(
                        f'"$" (last day of month) needs pg_cron {_version_text(_LAST_DOM_SINCE)} or later'
                        f" (the database has {_version_text(self.version)})"
                    )
                ch = self.r.get()
                if ch not in _BLANKS:
                    if ch == _END:
                        raise CronError("expected 5 fields, got 3")
                    raise self._error(
                        f'"$" (last day of month) must be the whole field, got {_quote(self._field_text())}'
                    )
                ch = self._skip_blanks(ch)
                last_dom = True
                self.min_version = max(self.min_version, _LAST_DOM_SINCE)
                sets.append(set())
                stars.append(False)
                continue
            stars.append(ch == "*")
            values, ch = self._get_list(ch)
            sets.append(values)
        if ch != _END:
            rest = self.text[self.r.at :]
            self.warnings.append(f"text after the fifth field is ignored: {_quote(rest)}")
        minutes, hours, doms, months, dows = sets
        return "fields", _reduce(minutes, hours, doms, last_dom, months, dows, stars[2], stars[4])

    def _macro(self) -> _Fields | None:
        begin = self.r.pos
        ch = self.r.get()
        while ch not in (" ", "\t", "\n", _END):  # get_string(cmd, ..., " \t\n")
            ch = self.r.get()
        name = self.text[begin : self.r.at]
        if name not in _MACROS:
            hint = f' (macros are lower case: "@{name.lower()}")' if name.lower() in _MACROS else ""
            raise CronError(f"unknown macro {_quote('@' + name)}{hint}")
        rest = self.text[self.r.pos :] if ch != _END else ""
        if rest.strip(" \t\n"):
            self.warnings.append(f"text after {_quote('@' + name)} is ignored: {_quote(rest.strip())}")
        all_hours = set(range(24))
        all_doms, all_months, all_dows = set(range(1, 32)), set(range(1, 13)), set(range(8))
        if name in ("reboot", "restart"):
            return None
        if name in ("yearly", "annually"):
            if self.version >= PG_CRON_1_5:
                self.warnings.append(
                    f'"@{name}" may never fire on pg_cron 1.5 and later (entry.c sets its month from an'
                    ' out-of-range value); "0 0 1 1 *" is safe'
                )
            return _reduce({0}, {0}, {1}, False, {1}, all_dows, False, True)
        if name == "monthly":
            return _reduce({0}, {0}, {1}, False, all_months, all_dows, False, True)
        if name == "weekly":
            return _reduce({0}, {0}, all_doms, False, all_months, {0}, False, True)
        if name in ("daily", "midnight"):
            return _reduce({0}, {0}, all_doms, False, all_months, all_dows, False, False)
        return _reduce({0}, all_hours, all_doms, False, all_months, all_dows, False, False)  # hourly


def _skip_comments(text: str) -> tuple[int, bool]:
    """vixie cron's skip_comments(): leading blank lines, blanks and '#' comment lines."""
    i = 0
    skipped = False
    while True:
        j = i
        while j < len(text) and text[j] in _BLANKS:
            j += 1
        if j < len(text) and text[j] in "\n#":
            newline = text.find("\n", j)
            if newline == -1:  # pg_cron loops forever here (get_char never returns EOF)
                raise CronError("the schedule is only a comment")
            i = newline + 1
            skipped = True
            continue
        return j, skipped


_INTERVAL_LIKE = re.compile(r"[ \t\n\v\f\r]*[+-]?\d+[ \t\n\v\f\r]*[A-Za-z]+[ \t\n\v\f\r]*")
_INTERVAL = re.compile(r"[ \t\n\v\f\r]*(?P<sign>[+-]?)(?P<n>\d+)[ \t\n\v\f\r]*secon(?:d|ds[ \t\n\v\f\r]*)")


def _interval_seconds(text: str) -> int | None:
    """TryParseInterval(): sscanf(lower(text), " %u secon%c%c %c") with N in 1..59.

    So "N second" must end right after the 'd', while "N seconds" may be followed by blanks.
    """
    lowered = "".join(c.lower() if c.isascii() else c for c in text)
    m = _INTERVAL.fullmatch(lowered)
    if m is None or m.group("sign") == "-":
        return None
    n = int(m.group("n"))
    return n if 0 < n < 60 else None


def parse(text: str, *, version: tuple[int, int] = PG_CRON_1_6) -> Schedule:
    """Parse a schedule as pg_cron `version` would; raise CronError with a precise message if it would not."""
    if not isinstance(text, str):
        raise CronError(f"a schedule must be text, not {type(text).__name__}")
    return _parse(text, tuple(version))


# Loading validates every schedule, warnings parse it again, and each plan normalises live schedules: a
# few distinct texts parsed thousands of times. A Schedule is immutable, so sharing one is safe.
@lru_cache(maxsize=4096)
def _parse(text: str, version: tuple[int, int]) -> Schedule:
    if "\0" in text:
        raise CronError("the schedule contains a NUL character")
    cron_error: CronError | None = None
    if len(text.encode("utf-8")) > _MAX_SCHEDULE_BYTES:
        cron_error = CronError(
            f"the schedule is too long ({len(text.encode('utf-8'))} bytes; pg_cron reads at most"
            f" {_MAX_SCHEDULE_BYTES})"
        )
    else:
        try:
            start, skipped = _skip_comments(text)
            parser = _EntryParser(text, start, version)
            form, fields = parser.parse()
        except CronError as e:
            cron_error = e
        else:
            warnings = parser.warnings
            if "\t" in text:
                warnings.insert(0, "contains tabs (pg_cron reads a tab as a space)")
            if skipped:
                warnings.insert(0, "leading blank or comment lines are ignored")
            if fields is not None and fields.day == _NEVER:
                warnings.append("the schedule never fires")
            canonical = _REBOOT if fields is None else _canonical(fields)
            return Schedule(text, form, parser.min_version, tuple(warnings), canonical, _fields=fields)

    seconds = _interval_seconds(text)
    if seconds is not None:
        if version < _INTERVAL_SINCE:
            raise CronError(
                f"{_quote(text.strip())} (an interval) needs pg_cron {_version_text(_INTERVAL_SINCE)} or"
                f" later (the database has {_version_text(version)})"
            )
        return Schedule(text, "interval", _INTERVAL_SINCE, (), f"{seconds} seconds", _seconds=seconds)
    if _INTERVAL_LIKE.fullmatch(text):
        if re.fullmatch(r"\s*\+?0*[1-9]\d?\s*second\s+", text, re.IGNORECASE) and _interval_seconds(
            text.rstrip()
        ):
            raise CronError(
                f'{_quote(text)} is not a valid interval: pg_cron allows blanks after "seconds" but not after "second"'
            )
        raise CronError(
            f'{_quote(" ".join(text.split()))} is not a valid interval (use "N seconds" with N from 1 to 59)'
        )
    if not text.strip():
        raise CronError("the schedule is empty")
    assert cron_error is not None
    raise cron_error


def normalise(text: str) -> str:
    """The canonical form under pg_cron 1.6 rules, else the text with whitespace collapsed. Never raises."""
    try:
        return parse(text, version=PG_CRON_1_6).canonical
    except CronError:
        return " ".join(str(text).split())
