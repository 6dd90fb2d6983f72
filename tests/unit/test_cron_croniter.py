"""Schedule.next_runs against croniter, a well-kept independent implementation, as an oracle.

Only classic five-field schedules are compared, where croniter and pg_cron (vixie cron) agree:
numbers, ranges, steps, lists and three-letter names. Left out on purpose, because the two differ:
pg_cron's `$`, intervals and macros (croniter has no such forms or reads them differently), day of week 7,
and a day-of-month or day-of-week field that starts with `*/`: vixie cron treats such a field as `*` when
deciding whether both day fields restrict (so `*/2 ... 1` needs both), croniter as a list (either).
croniter before 2.0.4 read a day-of-week range covering every day (`0-6`) as `*`: pyproject.toml asks for
2.0.4 or later, found by the lower-bound pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconciler.cron import parse

BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
MONTHS = ["", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _name(index: int, n: int, draw: st.DrawFn) -> str:
    if index == 3 and draw(st.booleans()):
        return MONTHS[n]
    if index == 4 and draw(st.booleans()):
        return DAYS[n]
    return str(n)


@st.composite
def field(draw: st.DrawFn, index: int) -> str:
    low, high = BOUNDS[index]
    day_field = index in (2, 4)
    kinds = ["number", "range", "range-step"] + ([] if day_field else ["star-step"])
    if draw(st.integers(0, 4)) == 0:
        return "*"
    items = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        if kind == "number":
            items.append(_name(index, draw(st.integers(low, high)), draw))
        elif kind == "star-step":
            items.append(f"*/{draw(st.integers(1, high - low))}")
        else:
            a = draw(st.integers(low, high - 1))
            b = draw(st.integers(a + 1, high))
            text = f"{_name(index, a, draw)}-{_name(index, b, draw)}"
            if kind == "range-step":
                text = f"{a}-{b}/{draw(st.integers(1, b - a))}"
            items.append(text)
    return ",".join(items)


@st.composite
def schedule(draw: st.DrawFn) -> str:
    return " ".join(draw(field(i)) for i in range(5))


starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
)


def _croniter_runs(text: str, start: datetime, count: int) -> list[datetime]:
    it = croniter(text, start)
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]


@settings(max_examples=400, deadline=None)
@given(schedule(), starts)
def test_next_runs_agree_with_croniter(text: str, start: datetime) -> None:
    parsed = parse(text)
    assume(not parsed.warnings)  # "never fires" (31 in February only): croniter would search for years
    ours = parsed.next_runs(start, 5)
    assert ours == _croniter_runs(text, start, 5), text


def test_the_oracle_sees_a_difference() -> None:
    # the comparison is not vacuous: a schedule off by one minute is told apart
    start = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert parse("*/5 * * * *").next_runs(start, 3) == _croniter_runs("*/5 * * * *", start, 3)
    assert parse("1-59/5 * * * *").next_runs(start, 3) != _croniter_runs("*/5 * * * *", start, 3)
    assert _croniter_runs("0 0 29 2 *", start, 1)[0] - start > timedelta(days=365)
