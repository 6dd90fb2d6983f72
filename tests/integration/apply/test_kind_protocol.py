"""Issue 14, point 2: a kind defined only here, plus one registry line, goes through the whole tool.

`NoteKind` keeps rows of a table this test creates (public.kind_notes) as declared by the test itself
(it has no manifest section). Registered with `kinds.registered()` (the one registry line), it is read in
the live-state pipeline, planned, privilege-checked, applied in the apply's transaction, rendered,
recorded as owned and in history, and pruned, with no other file of the project changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from psycopg import sql

from reconciler import kinds
from reconciler.engine import db
from reconciler.engine.sources import resolve_secrets
from reconciler.kinds.base import (
    Capabilities,
    Inputs,
    Kind,
    KindDefaults,
    PlanContext,
    Privilege,
    Statement,
    in_sync,
    table_privilege,
    undeclared,
)
from reconciler.kinds.trigger_command import render_command
from reconciler.manifest import load_manifest
from reconciler.model import Action, Change, FieldChange
from reconciler.plan import plan
from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    MANIFEST,
    SECRETS_ENV,
    assert_converged,
    assert_ok,
    execute,
    history_rows,
    query,
    reconcile,
)

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

TABLE = "public.kind_notes"
WRITE = Privilege("note.write", "write rows of public.kind_notes", "GRANT INSERT, UPDATE, DELETE ON public.kind_notes TO {user}")


class NoteKind(KindDefaults):
    """A kind over (name, body) rows; `declared` stands in for a manifest section."""

    name = "note"
    prunable = True
    hidden_fields = frozenset({"name"})
    relations = (TABLE,)
    probes = {WRITE.key: table_privilege(TABLE, "INSERT, UPDATE, DELETE")}

    def __init__(self, declared: Mapping[str, str]) -> None:
        self.declared = dict(declared)

    def read(self, caps: Capabilities, manifest: Manifest | None) -> Statement | None:
        if not caps.has(TABLE):
            return None
        return Statement(sql.SQL("SELECT name, body FROM {} ORDER BY name").format(sql.Identifier("public", "kind_notes")))

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> dict[str, str]:
        return {name: body for name, body in rows}

    def desired(self, manifest: Manifest, inputs: Inputs) -> dict[str, str]:
        return dict(self.declared)

    def diff(self, want: Mapping[str, str], live: Mapping[str, str], ctx: PlanContext) -> list[Change]:
        changes = []
        for name, body in want.items():
            after = {"name": name, "body": body}
            if name not in live:
                changes.append(Change(self.name, name, Action.CREATE, after=after, reason="missing"))
            elif live[name] != body:
                changes.append(Change(self.name, name, Action.UPDATE, before={"name": name, "body": live[name]},
                                      after=after, fields=(FieldChange("body", live[name], body),), reason="edited"))
            else:
                changes.append(in_sync(self.name, name, after, after, ctx))
        changes += [undeclared(self.name, name, {"name": name, "body": body}, ctx)
                    for name, body in live.items() if name not in want]
        return changes

    def privileges(self, change: Change) -> tuple[Privilege, ...]:
        return (WRITE,)

    def prune_policy(self, manifest: Manifest) -> str:
        return "delete"

    def statements(self, changes: Sequence[Change], caps: Capabilities) -> list[Statement]:
        table = sql.Identifier("public", "kind_notes")
        out = []
        for c in changes:
            if c.action is Action.CREATE:
                assert c.after is not None
                out.append(Statement(sql.SQL("INSERT INTO {} (name, body) VALUES (%s, %s)").format(table),
                                     (c.key, c.after["body"]), f"create note {c.key}"))
            elif c.action is Action.UPDATE:
                assert c.after is not None
                out.append(Statement(sql.SQL("UPDATE {} SET body = %s WHERE name = %s").format(table),
                                     (c.after["body"], c.key), f"update note {c.key}"))
            elif c.action is Action.DELETE:
                out.append(Statement(sql.SQL("DELETE FROM {} WHERE name = %s").format(table), (c.key,),
                                     f"delete note {c.key}"))
        return out


def test_the_kind_satisfies_the_protocol() -> None:
    kind: Kind = NoteKind({})  # mypy checks the class against the protocol here
    assert kind.name == "note"


def test_a_kind_defined_in_a_test_goes_through_the_whole_tool(audited_db: DbTarget) -> None:
    url = audited_db.url
    execute(url, "CREATE TABLE public.kind_notes (name text PRIMARY KEY, body text NOT NULL)")
    execute(url, "INSERT INTO public.kind_notes VALUES ('hand-made', 'not ours')")
    note = NoteKind({"alpha": "first", "beta": "second"})
    with kinds.registered(note):
        # read: in the one pipeline, with the kind's probe in the one capabilities query
        manifest = load_manifest([str(MANIFEST)])
        with db.connect(url, autocommit=True) as conn:
            live = db.read_live(conn, manifest)
        assert live.of("note") == {"hand-made": "not ours"}
        assert live.capabilities.probes["note.write"] is True
        denied = dataclasses.replace(live, capabilities=dataclasses.replace(
            live.capabilities, probes={**live.capabilities.probes, "note.write": False}))
        refused = [f for f in plan(manifest, denied, resolve_secrets(manifest, SECRETS_ENV), render_command).findings if f.code == "missing_privilege"]
        assert [(f.message, f.fix) for f in refused] == [
            ("postgres may not write rows of public.kind_notes", "GRANT INSERT, UPDATE, DELETE ON public.kind_notes TO postgres")]

        # plan and render: the key is the heading, hidden fields stay hidden
        dry = reconcile(url)
        assert_ok(dry)
        assert "+ note alpha: create (missing)\n      body: \"first\"\n" in dry.stdout
        assert "? note hand-made: unmanaged (not declared)" in dry.stdout
        doc = json.loads(reconcile(url, "--format", "json").stdout)
        assert {c["key"]: c["action"] for c in doc["changes"] if c["kind"] == "note"} == {
            "alpha": "create", "beta": "create", "hand-made": "unmanaged"}

        # apply: in the transaction, owned, in history
        assert_ok(reconcile(url, "--apply"))
        assert query(url, "SELECT name, body FROM public.kind_notes ORDER BY name") == [
            ("alpha", "first"), ("beta", "second"), ("hand-made", "not ours")]
        assert query(url, "SELECT key FROM reconciler.managed WHERE kind = 'note' ORDER BY key") == [
            ("alpha",), ("beta",)]
        [(_, _, _, changes)] = history_rows(audited_db.superuser_url)
        assert {(c["kind"], c["key"], c["action"]) for c in changes if c["kind"] == "note"} == {
            ("note", "alpha", "create"), ("note", "beta", "create")}
        assert_converged(url)

        # update and prune: only what it manages
        note.declared = {"alpha": "edited"}
        pruned = reconcile(url, "--prune", "--apply")
        assert_ok(pruned)
        assert "~ note alpha: update (changed in scheduler.yaml: body)\n      body: \"first\" → \"edited\"\n" in pruned.stdout
        assert "- note beta: delete (not declared)" in pruned.stdout
        assert query(url, "SELECT name, body FROM public.kind_notes ORDER BY name") == [
            ("alpha", "edited"), ("hand-made", "not ours")]
        assert query(url, "SELECT key FROM reconciler.managed WHERE kind = 'note' AND NOT removed") == [("alpha",)]
        last = history_rows(audited_db.superuser_url)[-1][3]
        [deleted] = [c for c in last if c["kind"] == "note" and c["action"] == "delete"]
        assert deleted["before"] == {"name": "beta", "body": "second"}
        assert_converged(url, MANIFEST, "--prune")
    assert "note" not in [k.name for k in kinds.REGISTRY]
