"""pg_cron's schedule parser: `parse` and `normalise`.

The grammar mirrors pg_cron's own parser (`parse_cron_entry` in src/entry.c, a copy of vixie cron's
`load_entry`, and `TryParseInterval` in src/job_metadata.c) character by character, including its
quirks: whatever follows the fifth field is ignored, junk after `*` or after a number is skipped while
letters or digits glued to a number are not, and a three-letter name is matched case-insensitively.
"""

from __future__ import annotations

import re
from functools import lru_cache

from reconciler.cron.schedule import (
    NEVER,
    PG_CRON_1_5,
    PG_CRON_1_6,
    CronError,
    CronFields,
    Schedule,
    canonical_text,
    reduce_fields,
)

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
    def parse(self) -> tuple[str, CronFields | None]:
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
        return "fields", reduce_fields(minutes, hours, doms, last_dom, months, dows, stars[2], stars[4])

    def _macro(self) -> CronFields | None:
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
            return reduce_fields({0}, {0}, {1}, False, {1}, all_dows, False, True)
        if name == "monthly":
            return reduce_fields({0}, {0}, {1}, False, all_months, all_dows, False, True)
        if name == "weekly":
            return reduce_fields({0}, {0}, all_doms, False, all_months, {0}, False, True)
        if name in ("daily", "midnight"):
            return reduce_fields({0}, {0}, all_doms, False, all_months, all_dows, False, False)
        return reduce_fields({0}, all_hours, all_doms, False, all_months, all_dows, False, False)  # hourly


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
            if fields is not None and fields.day == NEVER:
                warnings.append("the schedule never fires")
            canonical = _REBOOT if fields is None else canonical_text(fields)
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
