"""The three-way attribution (reconciler/attribution.py) on hand-built changes and records: pure, no database."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.attribution import attribute, field_origin
from reconciler.kinds.base import Capabilities, LiveState, Managed
from reconciler.model import Action, AppliedRecord, Change, FieldChange, Origin, Plan

RECORD = AppliedRecord(4, "2026-12-07T10:00:00Z", "deployer", "--apply")
DOWN = AppliedRecord(5, "2026-12-07T11:00:00Z", "deployer", "down --include-secrets")
APPLIED = {"desired": {"schedule": "*/5 * * * *", "endpoint": "/a", "is_active": True}, "live": {}}


def state(*rows: Managed) -> LiveState:
    return LiveState(Capabilities(), {}, {(r.kind, r.key): r for r in rows if not r.removed}, True,
                     {(r.kind, r.key): r for r in rows if r.removed})


def update(*fields: FieldChange) -> Change:
    return Change("job", "a", Action.UPDATE, before={"job_name": "a"}, after={"job_name": "a"}, fields=fields,
                  reason="changed outside git: " + ", ".join(f.path for f in fields))


@pytest.mark.parametrize(("live", "desired", "origin"), [
    ("*/5 * * * *", "*/10 * * * *", Origin.MANIFEST),  # live as applied, the manifest moved
    ("*/7 * * * *", "*/5 * * * *", Origin.DRIFT),  # the manifest as applied, the live value moved
    ("*/7 * * * *", "*/10 * * * *", Origin.CONFLICT),  # both moved
])
def test_field_origin(live: str, desired: str, origin: Origin) -> None:
    assert field_origin(FieldChange("schedule", live, desired), APPLIED) is origin


@pytest.mark.parametrize("record", [None, {}, {"desired": {}}, {"desired": {"endpoint": "/a"}}])
def test_no_record_of_the_field_is_unknown(record: Any) -> None:
    assert field_origin(FieldChange("schedule", "a", "b"), record) is Origin.UNKNOWN


def test_a_sensitive_field_is_never_attributed() -> None:
    assert field_origin(FieldChange("value", sensitive=True), {"desired": {"value": "x"}}) is Origin.UNKNOWN


def test_the_live_spelling_the_apply_left_is_what_live_is_compared_with() -> None:
    record = {"desired": {"schedule": "0 * * * *"}, "live": {"schedule": "0 */1 * * *"}}
    assert field_origin(FieldChange("schedule", "0 */1 * * *", "5 * * * *"), record) is Origin.MANIFEST
    assert field_origin(FieldChange("schedule", "7 * * * *", "0 * * * *"), record) is Origin.DRIFT


def test_manifest_and_drift_on_two_fields_of_one_object_are_attributed_apart() -> None:
    change = update(FieldChange("schedule", "*/5 * * * *", "*/10 * * * *"), FieldChange("endpoint", "/hacked", "/a"))
    (out,) = attribute([change], state(Managed("job", "a", applied=APPLIED, record=RECORD)))
    assert [(f.path, f.origin) for f in out.fields] == [("schedule", Origin.MANIFEST), ("endpoint", Origin.DRIFT)]
    assert out.origin is None and out.origins() == {Origin.MANIFEST, Origin.DRIFT}
    assert out.reason == "changed outside git since apply #4: endpoint; changed in scheduler.yaml: schedule"
    assert out.record == RECORD


def test_a_conflict_carries_the_last_applied_value() -> None:
    (out,) = attribute([update(FieldChange("schedule", "*/7 * * * *", "*/10 * * * *"))],
                       state(Managed("job", "a", applied=APPLIED, record=RECORD)), "prod.yaml")
    assert out.fields[0].origin is Origin.CONFLICT and out.fields[0].applied == "*/5 * * * *"
    assert out.reason == "conflict: changed in prod.yaml and outside git since apply #4: schedule"


def test_an_object_recorded_by_the_previous_release_is_unknown() -> None:
    (out,) = attribute([update(FieldChange("schedule", "*/7 * * * *", "*/5 * * * *"))], state(Managed("job", "a")))
    assert out.origin is Origin.UNKNOWN and out.reason == "differs: schedule"


def test_a_secret_value_keeps_its_kinds_words() -> None:
    change = Change("secret", "s", Action.UPDATE, before={}, after={}, fields=(FieldChange("value", sensitive=True),),
                    reason="value differs from its source")
    (out,) = attribute([change], state(Managed("secret", "s", applied={"desired": {}}, record=RECORD)))
    assert out.origin is Origin.UNKNOWN and out.reason == "value differs from its source"


def test_after_reconcile_down_the_restore_is_not_drift() -> None:
    record = {"desired": {"is_active": False}, "live": {}}
    (out,) = attribute([update(FieldChange("is_active", False, True))],
                       state(Managed("job", "a", applied=record, record=DOWN)))
    assert out.origin is Origin.MANIFEST and out.reason == "restored after reconcile down #5: is_active"


def test_creates_by_record() -> None:
    create = Change("trigger", "t", Action.CREATE, after={"jobname": "t"}, reason="missing")
    assert attribute([create], state())[0].origin is Origin.MANIFEST  # never applied: a new declaration
    deleted = attribute([create], state(Managed("trigger", "t", applied={"desired": {}}, record=RECORD)))[0]
    assert deleted.origin is Origin.DRIFT and deleted.reason == "deleted outside git since apply #4"
    removed = attribute([create], state(Managed("trigger", "t", record=DOWN, removed=True)))[0]
    assert removed.origin is Origin.MANIFEST
    assert removed.reason == "missing: removed by reconcile down #5; declared in scheduler.yaml"


def test_plan_counts_and_drift() -> None:
    changes = attribute([update(FieldChange("schedule", "*/5 * * * *", "*/10 * * * *"), FieldChange("endpoint", "/x", "/a")),
                         Change("job", "gone", Action.NOOP, before={"job_name": "gone"}, reason="removed; pruning is off")],
                        state(Managed("job", "a", applied=APPLIED, record=RECORD), Managed("job", "gone")))
    plan = Plan(tuple(changes))
    assert plan.origin_counts() == {"manifest": 1, "drift": 1, "conflict": 0, "unknown": 0}
    assert plan.has_drift and [c.key for c in plan.kept] == ["gone"]
    roll_out = Plan(tuple(attribute([update(FieldChange("schedule", "*/5 * * * *", "*/10 * * * *"))],
                                    state(Managed("job", "a", applied=APPLIED, record=RECORD)))))
    assert not roll_out.has_drift


def test_a_secret_create_is_a_manifest_change_not_an_unknown_one() -> None:
    create = Change("secret", "s", Action.CREATE, after={"name": "s"}, reason="missing",
                    fields=(FieldChange("value", sensitive=True), FieldChange("description", None, "d")))
    (out,) = attribute([create], state())
    assert out.origins() == {Origin.MANIFEST} and not Plan((out,)).has_drift
