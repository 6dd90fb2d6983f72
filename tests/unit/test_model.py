"""The plan types refuse malformed plans."""

import pytest

from reconciler.model import Action, Change, FieldChange, Finding, Plan, Severity


def test_sensitive_field_cannot_carry_values():
    with pytest.raises(ValueError, match="must not carry values"):
        FieldChange("value", "old-secret", "new-secret", sensitive=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"action": Action.CREATE, "before": {}, "after": {}}, "has no 'before'", id="create-with-before"),
        pytest.param({"action": Action.CREATE}, "needs 'after'", id="create-without-after"),
        pytest.param({"action": Action.DELETE, "before": {}, "after": {}}, "has no 'after'", id="delete-with-after"),
        pytest.param({"action": Action.UPDATE, "before": {}, "after": {}}, "at least one field", id="update-no-fields"),
        pytest.param({"action": Action.DEACTIVATE, "after": {}}, "needs 'before'", id="deactivate-no-before"),
    ],
)
def test_change_invariants(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Change("job", "x", **kwargs)


def test_plan_counts_and_emptiness():
    plan = Plan((
        Change("job", "a", Action.CREATE, after={"x": 1}),
        Change("job", "b", Action.NOOP, before={}, after={}),
        Change("trigger", "c", Action.DELETE, before={"x": 1}),
        Change("job", "d", Action.UNMANAGED, before={}, after={}),
    ), (Finding(Severity.WARNING, "w", "warn"),))
    assert not plan.is_empty
    assert plan.counts() == {"create": 1, "update": 0, "delete": 1, "deactivate": 0, "adopt": 0, "unmanaged": 1, "no-op": 1}
    assert [c.key for c in plan.destructive] == ["c"]
    assert plan.blocking_findings == ()


def test_plan_of_only_noops_and_unmanaged_is_empty():
    plan = Plan((Change("job", "b", Action.NOOP, before={}, after={}),
                 Change("job", "d", Action.UNMANAGED, before={}, after={})))
    assert plan.is_empty


def test_an_adopt_only_plan_applies_but_changes_no_scheduler_object():
    adopt = Change("job", "a", Action.ADOPT, before={"x": 1}, after={"x": 1})
    plan = Plan((adopt, Change("job", "b", Action.NOOP, before={}, after={})))
    assert not plan.is_empty and plan.mutating == (adopt,)  # --apply records ownership
    assert not plan.changes_scheduler  # --detailed-exitcode: in sync
    assert Plan((adopt, Change("job", "c", Action.CREATE, after={"x": 1}))).changes_scheduler
