"""reconciler.cron: the pg_cron schedule dialect (docs/upstream.md, "The schedule dialect"), checked against pg_cron's parser.

The run-time checks compare Schedule.next_runs with a brute-force minute-by-minute matcher written here
from the expanded field sets, so they share no code with the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.cron import PG_CRON_1_4, PG_CRON_1_5, PG_CRON_1_6, CronError, Schedule, normalise, parse

V14, V15, V16 = PG_CRON_1_4, PG_CRON_1_5, PG_CRON_1_6

# ---------------------------------------------------------------------------------------------------
# Accepted and rejected strings: every example in docs/upstream.md, for both versions


ACCEPTED_BOTH = [
    ("0 10 * * *", "0 10 * * *"),
    ("*/5 * * * *", "*/5 * * * *"),
    ("*/5 *  * * *", "*/5 * * * *"),
    ("007 * * * *", "7 * * * *"),
    ("0 0 1,15 * *", "0 0 1,15 * *"),
    ("0 0 * jan *", "0 0 * 1 *"),
    ("0 0 * JAN-mar *", "0 0 * 1-3 *"),
    ("0 0 * * SUN", "0 0 * * 0"),
    ("0 9 * * mon-fri", "0 9 * * 1-5"),
    ("0 5 * * 7", "0 5 * * 0"),
    ("30 2 * * 0,7", "30 2 * * 0"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    ("@reboot", "@reboot"),
    ("@restart", "@reboot"),
    ("*/59 * * * *", "0,59 * * * *"),
    ("0 */23 * * *", "0 0,23 * * *"),
    ("0 0 */31 * *", "0 0 1 * *"),
    ("0 0 1 */12 *", "0 0 1 1 *"),
    ("0 0 * * */7", "0 0 * * 0"),
]

WARNED_BOTH = [
    ("0 16-0 * * *", "never", 'hour field: range "16-0" is reversed and matches nothing'),
    ("0 22-6 * * *", "never", 'hour field: range "22-6" is reversed and matches nothing'),
    ("* * * * * *", "* * * * *", 'text after the fifth field is ignored: "*"'),
    (
        "0 0 * * 1#2",
        "0 0 * * 1",
        'day-of-week field: "#2" after "1" is ignored (pg_cron has no nth-weekday syntax)',
    ),
    ("* * * * *garbage", "* * * * *", 'day-of-week field: "garbage" after "*" is ignored'),
    ("@reboot now", "@reboot", 'text after "@reboot" is ignored: "now"'),
    ("*garbage * * * *", "* * * * *", 'minute field: "garbage" after "*" is ignored'),
    ("0 0 * * fri-sun", "never", 'day-of-week field: range "fri-sun" is reversed and matches nothing'),
]

REJECTED_BOTH = [
    ("", "the schedule is empty"),
    ("   ", "the schedule is empty"),
    ("* * * *", "expected 5 fields, got 4"),
    ("0 0", "expected 5 fields, got 2"),
    ("1/20 * * * *", 'minute field: a step must follow "*" or a range, not a single number ("1/20")'),
    ("0 0 * * sunday", 'day-of-week field: "sunday" is not a number or a three-letter name'),
    ("0 0 1 january *", 'month field: "january" is not a number or a three-letter name'),
    ("61 * * * *", "minute field: 61 is out of range 0-59"),
    ("0 24 * * *", "hour field: 24 is out of range 0-23"),
    ("0 0 0 * *", "day-of-month field: 0 is out of range 1-31"),
    ("0 0 32 * *", "day-of-month field: 32 is out of range 1-31"),
    ("0 0 * 13 *", "month field: 13 is out of range 1-12"),
    ("0 0 * * 8", "day-of-week field: 8 is out of range 0-7"),
    ("0 1-25 * * *", "hour field: 25 is out of range 0-23"),
    ("*/0 * * * *", "minute field: step 0 must be positive"),
    ("0 */0 * * *", "hour field: step 0 must be positive"),
    ("*/-1 * * * *", "minute field: step -1 must be positive"),
    ("0 0 * * 1x", 'day-of-week field: "1x" is not a number or a three-letter name'),
    ("0 0 1,$ * *", 'day-of-month field: "$" (last day of month) must be the whole field, got "1,$"'),
    ("0 0 L * *", 'day-of-month field: "L" is not a number'),
    ("0 0 15W * *", 'day-of-month field: "15W" is not a number'),
    ("0 0 ? * *", 'day-of-month field: "?" does not start with a number or "*"'),
    ("H * * * *", 'minute field: "H" is not a number'),
    ("@restar", 'unknown macro "@restar"'),
    ("@every 5m", 'unknown macro "@every"'),
    ("@DAILY", 'unknown macro "@DAILY" (macros are lower case: "@daily")'),
    ("0 seconds", '"0 seconds" is not a valid interval (use "N seconds" with N from 1 to 59)'),
    ("60 seconds", '"60 seconds" is not a valid interval (use "N seconds" with N from 1 to 59)'),
    ("5 sec", '"5 sec" is not a valid interval (use "N seconds" with N from 1 to 59)'),
    ("5 minutes", '"5 minutes" is not a valid interval (use "N seconds" with N from 1 to 59)'),
    ("1,,2 * * * *", 'minute field: "1,,2" has an empty list item'),
    ("1- * * * *", 'minute field: "1-" has a range without an end'),
    ("*/ * * * *", 'minute field: "*/" has a step without a number'),
    ("*/mon * * * *", 'minute field: step "mon" is not a number'),
    ("# just a comment", "the schedule is only a comment"),
]

INTERVALS = [
    ("5 seconds", "5 seconds"),
    ("5seconds", "5 seconds"),
    ("1 second", "1 seconds"),
    ("59 seconds", "59 seconds"),
    ("  10   SECONDS  ", "10 seconds"),
    ("30 Second", "30 seconds"),
    ("+5 seconds", "5 seconds"),
    ("05 seconds", "5 seconds"),
]

STEP_TOO_LARGE = [
    ("*/60 * * * *", "minute field: step 60 is larger than the field's maximum 59", "0 * * * *"),
    ("0 */24 * * *", "hour field: step 24 is larger than the field's maximum 23", "0 0 * * *"),
    ("0 0 */32 * *", "day-of-month field: step 32 is larger than the field's maximum 31", "0 0 1 * *"),
    ("0 0 1 */13 *", "month field: step 13 is larger than the field's maximum 12", "0 0 1 1 *"),
    ("0 0 * * */8", "day-of-week field: step 8 is larger than the field's maximum 7", "0 0 * * 0"),
]


@pytest.mark.parametrize("version", [V14, V16], ids=["1.4", "1.6"])
@pytest.mark.parametrize(("text", "canonical"), ACCEPTED_BOTH, ids=[t for t, _ in ACCEPTED_BOTH])
def test_accepted_by_both(text: str, canonical: str, version: tuple[int, int]) -> None:
    s = parse(text, version=version)
    assert s.canonical == canonical
    assert s.text == text
    assert s.min_version == (1, 0)
    assert s.form == ("macro" if text.startswith("@") else "fields")
    if not text.startswith(("@yearly", "@annually")):
        assert s.warnings == ()


@pytest.mark.parametrize("version", [V14, V16], ids=["1.4", "1.6"])
@pytest.mark.parametrize(("text", "canonical", "warning"), WARNED_BOTH, ids=[t for t, _, _ in WARNED_BOTH])
def test_accepted_with_a_warning(text: str, canonical: str, warning: str, version: tuple[int, int]) -> None:
    s = parse(text, version=version)
    assert s.canonical == canonical
    assert warning in s.warnings


@pytest.mark.parametrize("version", [V14, V16], ids=["1.4", "1.6"])
@pytest.mark.parametrize(("text", "message"), REJECTED_BOTH, ids=[repr(t) for t, _ in REJECTED_BOTH])
def test_rejected_by_both(text: str, message: str, version: tuple[int, int]) -> None:
    with pytest.raises(CronError) as e:
        parse(text, version=version)
    assert str(e.value) == message


@pytest.mark.parametrize(("text", "canonical"), INTERVALS, ids=[repr(t) for t, _ in INTERVALS])
def test_interval_form_needs_1_5(text: str, canonical: str) -> None:
    for version in (V15, V16):
        s = parse(text, version=version)
        assert (s.form, s.canonical, s.min_version, s.warnings) == ("interval", canonical, (1, 5), ())
    with pytest.raises(CronError) as e:
        parse(text, version=V14)
    assert str(e.value) == f'"{text.strip()}" (an interval) needs pg_cron 1.5 or later (the database has 1.4)'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "5 second ",
            '"5 second " is not a valid interval: pg_cron allows blanks after "seconds" but not after "second"',
        ),
        ("5 secondsx", '"5 secondsx" is not a valid interval (use "N seconds" with N from 1 to 59)'),
        ("-5 seconds", '"-5 seconds" is not a valid interval (use "N seconds" with N from 1 to 59)'),
    ],
    ids=["trailing-blank-after-second", "glued-junk", "negative"],
)
def test_interval_edge_cases_follow_sscanf(text: str, message: str) -> None:
    with pytest.raises(CronError) as e:
        parse(text)
    assert str(e.value) == message


@pytest.mark.parametrize(
    "text", ["0 12 $ * *", "0 0 $ * 1", "0 0 $\t* *"], ids=["last-day", "last-day-or-monday", "tab"]
)
def test_last_day_of_month_needs_1_6(text: str) -> None:
    s = parse(text, version=V16)
    assert s.min_version == (1, 6)
    assert "$" in s.canonical
    for version, has in ((V14, "1.4"), (V15, "1.5")):
        with pytest.raises(CronError) as e:
            parse(text, version=version)
        assert str(e.value) == f'"$" (last day of month) needs pg_cron 1.6 or later (the database has {has})'


@pytest.mark.parametrize("text", ["0 0 $foo * *", "0 0 $, * *"], ids=["$foo", "$,"])
def test_dollar_must_stand_alone(text: str) -> None:
    with pytest.raises(CronError) as e:
        parse(text)
    assert str(e.value).startswith('day-of-month field: "$" (last day of month) must be the whole field')


@pytest.mark.parametrize(
    ("text", "message", "canonical"), STEP_TOO_LARGE, ids=[t for t, _, _ in STEP_TOO_LARGE]
)
def test_step_larger_than_the_maximum(text: str, message: str, canonical: str) -> None:
    with pytest.raises(CronError) as e:
        parse(text, version=V16)
    assert str(e.value) == message
    s = parse(text, version=V14)
    assert s.canonical == canonical
    assert s.warnings == (f"{message} (pg_cron 1.6 rejects it)",)


def test_yearly_warns_about_the_month_bug_from_1_5() -> None:
    assert parse("@yearly", version=V14).warnings == ()
    assert "may never fire" in parse("@yearly", version=V16).warnings[0]


@pytest.mark.parametrize(
    "text",
    ["  0 10 * * *", "\n0 10 * * *", "# nightly\n0 10 * * *", "0\t10\t*\t*\t*", "0 10 * * *\n"],
    ids=["leading-blanks", "leading-newline", "comment-line", "tabs", "trailing-newline"],
)
def test_blanks_and_comments_like_vixie_cron(text: str) -> None:
    assert parse(text).canonical == "0 10 * * *"


def test_schedule_too_long() -> None:
    with pytest.raises(CronError, match="too long"):
        parse("* * * * * " + "x" * 990)


# ---------------------------------------------------------------------------------------------------
# Canonical equivalences

EQUIVALENT = [
    ("*/5 *  * * *", "*/5 * * * *"),
    ("0 5 * * 7", "0 5 * * 0"),
    ("*/15 * * * *", "0,15,30,45 * * * *"),
    ("0-59/15 * * * *", "*/15 * * * *"),
    ("0 0 * jan,JUL *", "0 0 * 1,7 *"),
    ("0 9 * * Mon-Fri", "0 9 * * 1-5"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "@daily"),
    ("@hourly", "0 * * * *"),
    ("@weekly", "0 0 * * sun"),
    ("@monthly", "0 0 1 * *"),
    ("@annually", "0 0 1 jan *"),
    ("@reboot", "@restart"),
    ("0 0 1-31 * 1", "0 0 * * *"),  # neither field starts with '*': either matches, and dom always does
    ("0 0 * * 0-6", "0 0 * * *"),
    ("0 0 1,* * 1", "0 0 * * *"),  # no leading '*' in dom, so OR semantics with a full dom
    ("0 0 */1 * *", "0 0 * * *"),
    ("0 0 31 4,6,7 *", "0 0 31 7 *"),  # April and June have no 31st
    ("0 0 30 2 *", "0 0 31 4 *"),  # both never fire
    ("5 seconds", "5seconds"),
    ("1 second", "1 seconds"),
    ("0 0 1-5 * *", "0 0 1,2,3,4,5 * *"),
]

NOT_EQUIVALENT = [
    ("0 0 * * 1", "0 0 1-31 * 1"),  # '*' in dom: Mondays; '1-31': every day
    ("0 0 */2 * 1", "0 0 1-31/2 * 1"),  # star-prefixed step: odd days AND Monday; no star: odd days OR Monday
    ("0 0 1 * 1", "0 0 1 * *"),
    ("*/15 * * * *", "*/20 * * * *"),
    ("0 5 * * 7", "0 5 * * 6"),
    ("0 0 $ * *", "0 0 31 * *"),
    ("@reboot", "0 0 * * *"),
    ("5 seconds", "6 seconds"),
    ("0 0 1 1 *", "0 0 1 2 *"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT, ids=[f"{a} == {b}" for a, b in EQUIVALENT])
def test_equivalent(a: str, b: str) -> None:
    assert parse(a).canonical == parse(b).canonical
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT, ids=[f"{a} != {b}" for a, b in NOT_EQUIVALENT])
def test_not_equivalent(a: str, b: str) -> None:
    assert parse(a).canonical != parse(b).canonical


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0   0 * * *", "0 0 * * *"),
        ("*/15 * * * *", "*/15 * * * *"),
        ("*/60 * * * *", "*/60 * * * *"),  # valid on 1.4 only: normalise uses 1.6 rules
        ("garbage   text", "garbage text"),
        ("  ", ""),
    ],
    ids=["collapses-spaces", "canonical", "1.4-only-kept-as-text", "invalid-collapsed", "blank"],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


# ---------------------------------------------------------------------------------------------------
# next_runs and max_period on hand-checked cases

T0 = datetime(2024, 2, 28, 23, 59, 30, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("0 0 $ * *", T0, [utc(2024, 2, 29), utc(2024, 3, 31), utc(2024, 4, 30)]),
        ("0 0 $ * *", utc(2023, 2, 1), [utc(2023, 2, 28), utc(2023, 3, 31), utc(2023, 4, 30)]),
        ("0 0 29 2 *", utc(2096, 3, 1), [utc(2104, 2, 29), utc(2108, 2, 29), utc(2112, 2, 29)]),
        (
            "* * * * *",
            utc(2024, 1, 1, 0, 0),
            [utc(2024, 1, 1, 0, 1), utc(2024, 1, 1, 0, 2), utc(2024, 1, 1, 0, 3)],
        ),
        ("@weekly", utc(2024, 3, 3), [utc(2024, 3, 10), utc(2024, 3, 17), utc(2024, 3, 24)]),
        ("0 12 13 * 5", utc(2024, 9, 1), [utc(2024, 9, 6, 12), utc(2024, 9, 13, 12), utc(2024, 9, 20, 12)]),
        ("0 12 */13 * 5", utc(2024, 1, 1), [utc(2024, 3, 1, 12), utc(2024, 6, 14, 12), utc(2024, 9, 27, 12)]),
        ("0 16-0 * * *", T0, []),
        ("@reboot", T0, []),
        (
            "20 seconds",
            T0,
            [utc(2024, 2, 28, 23, 59, 50), utc(2024, 2, 29, 0, 0, 10), utc(2024, 2, 29, 0, 0, 30)],
        ),
    ],
    ids=[
        "last-day-leap",
        "last-day-common",
        "feb29-skips-2100",
        "every-minute-strictly-after",
        "weekly-sunday",
        "dom-or-dow",
        "star-dom-and-dow",
        "never",
        "reboot",
        "interval",
    ],
)
def test_next_runs(text: str, start: datetime, expected: list[datetime]) -> None:
    assert parse(text).next_runs(start, 3) == expected


def test_next_runs_converts_to_utc_and_rejects_naive() -> None:
    s = parse("0 * * * *")
    ist = timezone(timedelta(hours=5, minutes=30))
    assert s.next_runs(datetime(2024, 1, 1, 5, 45, tzinfo=ist), 1) == [utc(2024, 1, 1, 1)]
    assert s.next_runs(T0, 1)[0].tzinfo is UTC
    with pytest.raises(ValueError):
        s.next_runs(datetime(2024, 1, 1), 1)


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("* * * * *", timedelta(minutes=1)),
        ("*/15 * * * *", timedelta(minutes=15)),
        ("0,10 * * * *", timedelta(minutes=50)),
        ("@hourly", timedelta(hours=1)),
        ("0 0 * * *", timedelta(days=1)),
        ("0 9 * * mon-fri", timedelta(days=3)),
        ("0 0 * * 0", timedelta(days=7)),
        ("0 0 31 * *", utc(2023, 10, 31) - utc(2023, 8, 31)),
        ("0 0 1 1 *", timedelta(days=366)),
        ("0 0 29 2 *", utc(2104, 2, 29) - utc(2096, 2, 29)),
        ("0 0 $ * *", timedelta(days=31)),
        ("30 seconds", timedelta(seconds=30)),
        ("@reboot", None),
        ("0 0 30 2 *", None),
    ],
    ids=lambda v: str(v),
)
def test_max_period(text: str, period: timedelta | None) -> None:
    assert parse(text).max_period() == period


# ---------------------------------------------------------------------------------------------------
# Property tests: random valid schedules against a brute-force matcher

FIELD_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
MONTH_ABBR = ["", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DOW_ABBR = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass
class Spec:
    """A schedule's text and, computed here independently, what each field selects."""

    text: str
    sets: list[set[int]]
    last_dom: bool
    dom_star: bool
    dow_star: bool


def _number(draw: st.DrawFn, index: int, low: int, high: int) -> tuple[str, int]:
    n = draw(st.integers(low, high))
    if index == 3 and draw(st.booleans()):
        return MONTH_ABBR[n].upper() if draw(st.booleans()) else MONTH_ABBR[n].capitalize(), n
    if index == 4 and n < 7 and draw(st.booleans()):
        return DOW_ABBR[n].capitalize(), n
    return ("0" * draw(st.integers(0, 1))) + str(n), n


@st.composite
def field_text(draw: st.DrawFn, index: int) -> tuple[str, set[int]]:
    low, high = FIELD_BOUNDS[index]
    items: list[str] = []
    values: set[int] = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["star", "star-step", "number", "range", "range-step"]))
        if kind == "star":
            items.append("*")
            values |= set(range(low, high + 1))
        elif kind == "star-step":
            step = draw(st.integers(1, high))
            items.append(f"*/{step}")
            values |= set(range(low, high + 1, step))
        elif kind == "number":
            text, n = _number(draw, index, low, high)
            items.append(text)
            values.add(n)
        else:
            (ta, a), (tb, b) = _number(draw, index, low, high), _number(draw, index, low, high)
            step = draw(st.integers(1, high)) if kind == "range-step" else 1
            items.append(f"{ta}-{tb}" + (f"/{step}" if kind == "range-step" else ""))
            values |= set(range(a, b + 1, step))
    return ",".join(items), values


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    texts: list[str] = []
    sets: list[set[int]] = []
    last_dom = False
    for index in range(5):
        if index == 2 and draw(st.integers(0, 9)) == 0:
            texts.append("$")
            sets.append(set())
            last_dom = True
            continue
        text, values = draw(field_text(index))
        texts.append(text)
        sets.append(values)
    sep = draw(st.sampled_from([" ", "  ", "\t"]))
    return Spec(sep.join(texts), sets, last_dom, texts[2].startswith("*"), texts[4].startswith("*"))


EDGE_STARTS = [
    utc(2024, 2, 28, 23, 59, 59),
    utc(2024, 2, 29, 23, 59),
    utc(2023, 2, 28, 23, 59),
    utc(2100, 2, 28, 12, 0),
    utc(2000, 2, 28, 23, 0, 1),
    utc(2023, 12, 31, 23, 59, 59),
    utc(2024, 4, 30, 23, 59),
    utc(2024, 1, 31, 0, 0),
]
starts = st.one_of(
    st.sampled_from(EDGE_STARTS),
    st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2101, 12, 31), timezones=st.just(UTC)),
)


def brute_force(
    spec: Spec, start: datetime, count: int, horizon_days: int
) -> tuple[list[datetime], datetime]:
    """Walk minute by minute (skipping whole days whose date cannot match) and apply vixie cron's rule."""
    minutes, hours, doms, months, dows_raw = spec.sets
    dows = {d % 7 for d in dows_raw}

    def day_ok(t: datetime) -> bool:
        if t.month not in months:
            return False
        this_dom = t.day in doms or (spec.last_dom and (t + timedelta(days=1)).day == 1)
        this_dow = t.isoweekday() % 7 in dows
        return (this_dom and this_dow) if (spec.dom_star or spec.dow_star) else (this_dom or this_dow)

    found: list[datetime] = []
    t = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = t + timedelta(days=horizon_days)
    if not (minutes and hours and months):  # a field that selects nothing: no minute can ever match
        return found, end
    while t < end and len(found) < count:
        if not day_ok(t):
            t = (t + timedelta(days=1)).replace(hour=0, minute=0)
            continue
        if t.hour not in hours:  # the whole hour cannot match
            t = t.replace(minute=0) + timedelta(hours=1)
            continue
        if t.minute in minutes:
            found.append(t)
        t += timedelta(minutes=1)
    return found, end


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), start=starts)
def test_next_runs_matches_brute_force(spec: Spec, start: datetime) -> None:
    schedule = parse(spec.text)
    expected, horizon = brute_force(spec, start, 4, horizon_days=366 * 9)
    actual = schedule.next_runs(start, 4)
    assert actual[: len(expected)] == expected
    assert all(t >= horizon for t in actual[len(expected) :])
    assert all(t > start for t in actual)


@settings(max_examples=500, deadline=None)
@given(spec=specs(), start=starts)
def test_canonical_round_trips(spec: Spec, start: datetime) -> None:
    schedule = parse(spec.text)
    assume(schedule.canonical != "never" and "(" not in schedule.canonical)
    again = parse(schedule.canonical)
    assert again.canonical == schedule.canonical
    assert again.next_runs(start, 5) == schedule.next_runs(start, 5)


@settings(max_examples=300, deadline=None)
@given(spec=specs(), start=starts)
def test_max_period_bounds_every_gap(spec: Spec, start: datetime) -> None:
    schedule = parse(spec.text)
    period = schedule.max_period()
    runs = schedule.next_runs(start, 30)
    if period is None:
        assert runs == []
    else:
        assert all(b - a <= period for a, b in zip(runs, runs[1:], strict=False))


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(), st.text(alphabet="0123456789*/-,$@#? \t\nLWHjanmosecd", max_size=30)))
def test_normalise_never_raises(text: str) -> None:
    result = normalise(text)
    assert isinstance(result, str)
    try:
        schedule: Schedule | None = parse(text)
    except CronError as e:
        schedule = None
        assert str(e)
    if schedule is not None:
        assert result == schedule.canonical
