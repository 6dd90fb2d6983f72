"""A kind defined only here, plus one registry line, goes through the whole tool.

`NoteKind` keeps rows of a table this test creates (public.kind_notes), declared in a manifest section of
its own (`notes:`, a list of `{name, body, protect}` defined here too). Registered with `kinds.registered()`
(the one registry line), its section is validated (counts, "did you mean" hints, duplicate names), and the
kind is read in the live-state pipeline, planned, privilege-checked, applied in the apply's transaction,
rendered, recorded as owned and in history, exported, pruned and rolled back by `reconcile down`, with no
other file of the project changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from click.testing import CliRunner
from psycopg import sql

from reconciler import kinds
from reconciler.cli.main import main
from reconciler.engine import db
from reconciler.engine.sources import resolve_secrets
from reconciler.errors import ManifestError
from reconciler.kinds.base import (
    Capabilities,
    Export,
    Inputs,
    Kind,
    KindDefaults,
    LiveState,
    PlanContext,
    Privilege,
    Rollback,
    Section,
    Statement,
)
from reconciler.kinds.common import in_sync, table_privilege, undeclared
from reconciler.manifest import load_manifest
from reconciler.manifest.types import SpecModel
from reconciler.model import Action, Change, FieldChange
from reconciler.plan import plan
from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    SECRETS_ENV,
    assert_converged,
    assert_ok,
    execute,
    history_rows,
    query,
    reconcile,
    reconcile_sub,
    write_manifest,
)

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

TABLE = "public.kind_notes"
WRITE = Privilege("note.write", "write rows of public.kind_notes", "GRANT INSERT, UPDATE, DELETE ON public.kind_notes TO {user}")


class NoteSpec(SpecModel):
    """One item of the `notes:` section."""

    name: str
    body: str
    protect: bool = False


class NoteKind(KindDefaults):
    """A kind over (name, body) rows, declared in its own `notes:` section."""

    name = "note"
    prunable = True
    hidden_fields = frozenset({"name"})
    relations = (TABLE,)
    probes = {WRITE.key: table_privilege(TABLE, "INSERT, UPDATE, DELETE")}
    manifest_section = Section("notes", tuple[NoteSpec, ...], ())
    rollback_help = "deletes managed notes"

    @staticmethod
    def _notes(manifest: Manifest) -> tuple[NoteSpec, ...]:
        notes: tuple[NoteSpec, ...] = getattr(manifest, "notes", ())
        return notes

    def read(self, caps: Capabilities, manifest: Manifest | None) -> Statement | None:
        if not caps.has(TABLE):
            return None
        return Statement(sql.SQL("SELECT name, body FROM {} ORDER BY name").format(sql.Identifier("public", "kind_notes")))

    def from_rows(self, rows: list[tuple[Any, ...]], caps: Capabilities) -> dict[str, str]:
        return {name: body for name, body in rows}

    def desired(self, manifest: Manifest, inputs: Inputs) -> dict[str, str]:
        return {note.name: note.body for note in self._notes(manifest)}

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

    def protected_keys(self, manifest: Manifest, caps: Capabilities) -> set[str]:
        return {note.name for note in self._notes(manifest) if note.protect}

    def declared(self, manifest: Manifest) -> int | None:
        return len(self._notes(manifest))

    def rollback(self, manifest: Manifest, *, include_secrets: bool) -> Rollback:
        return Rollback({"notes": ()})

    def export(self, live: LiveState, caps: Capabilities) -> Export | None:
        notes: Mapping[str, str] = live.of(self.name)
        return Export("notes", [{"name": name, "body": body} for name, body in sorted(notes.items())])

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
    kind: Kind = NoteKind()  # mypy checks the class against the protocol here
    assert kind.name == "note"


def _with_notes(*notes: dict[str, Any]) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["notes"] = list(notes)
    return edit


def test_its_section_is_validated_like_a_built_in_one(tmp_path: Path) -> None:
    with kinds.registered(NoteKind()):
        good = write_manifest(tmp_path, _with_notes({"name": "alpha", "body": "first"}, {"name": "beta", "body": "b"}))
        valid = CliRunner().invoke(main, ["validate", "-f", str(good)])
        assert valid.exit_code == 0, valid.output
        assert valid.output == f"{good}: 3 extensions, 3 secrets, 13 jobs, 1 trigger, 2 notes: valid\n"
        typo = write_manifest(tmp_path, _with_notes({"name": "alpha", "bdoy": "x"}, {"name": "alpha", "body": "y"}),
                              name="typo.yaml")
        with pytest.raises(ManifestError) as info:
            load_manifest([str(typo)])
        messages = [p.message for p in info.value.problems]
        assert 'unknown field "bdoy" (did you mean "body"?)' in messages
        assert 'duplicate note name "alpha" (first at notes[0])' in messages
    with pytest.raises(ManifestError) as gone:  # once unregistered, the section is unknown again
        load_manifest([str(good)])
    assert [p.message for p in gone.value.problems] == ['unknown field "notes"']


def test_a_kind_defined_in_a_test_goes_through_the_whole_tool(audited_db: DbTarget, tmp_path: Path) -> None:
    url = audited_db.url
    execute(url, "CREATE TABLE public.kind_notes (name text PRIMARY KEY, body text NOT NULL)")
    execute(url, "INSERT INTO public.kind_notes VALUES ('hand-made', 'not ours')")
    with kinds.registered(NoteKind()):
        manifest_path = write_manifest(tmp_path, _with_notes({"name": "alpha", "body": "first"},
                                                             {"name": "beta", "body": "second"}))
        # read: in the one pipeline, with the kind's probe in the one capabilities query
        manifest = load_manifest([str(manifest_path)])
        with db.connect(url, autocommit=True) as conn:
            live = db.read_live(conn, manifest)
        assert live.of("note") == {"hand-made": "not ours"}
        assert live.capabilities.probes["note.write"] is True
        denied = dataclasses.replace(live, capabilities=dataclasses.replace(
            live.capabilities, probes={**live.capabilities.probes, "note.write": False}))
        refused = [f for f in plan(manifest, denied, resolve_secrets(manifest, SECRETS_ENV)).findings if f.code == "missing_privilege"]
        assert [(f.message, f.fix) for f in refused] == [
            ("postgres may not write rows of public.kind_notes", "GRANT INSERT, UPDATE, DELETE ON public.kind_notes TO postgres")]

        # plan and render: the key is the heading, hidden fields stay hidden
        dry = reconcile(url, manifest=manifest_path)
        assert_ok(dry)
        assert "+ note alpha: create (missing)\n      body: \"first\"\n" in dry.stdout
        assert "? note hand-made: unmanaged (not declared)" in dry.stdout
        doc = json.loads(reconcile(url, "--format", "json", manifest=manifest_path).stdout)
        assert {c["key"]: c["action"] for c in doc["changes"] if c["kind"] == "note"} == {
            "alpha": "create", "beta": "create", "hand-made": "unmanaged"}

        # apply: in the transaction, owned, in history
        assert_ok(reconcile(url, "--apply", manifest=manifest_path))
        assert query(url, "SELECT name, body FROM public.kind_notes ORDER BY name") == [
            ("alpha", "first"), ("beta", "second"), ("hand-made", "not ours")]
        assert query(url, "SELECT key FROM reconciler.managed WHERE kind = 'note' ORDER BY key") == [
            ("alpha",), ("beta",)]
        [(_, _, _, changes)] = history_rows(audited_db.superuser_url)
        assert {(c["kind"], c["key"], c["action"]) for c in changes if c["kind"] == "note"} == {
            ("note", "alpha", "create"), ("note", "beta", "create")}
        assert_converged(url, manifest_path)
        listed = reconcile_sub(url, "history", manifest=None)
        assert_ok(listed)
        assert listed.stdout.startswith("#1 ") and "22 to create" in listed.stdout
        shown = reconcile_sub(url, "history", "--show", "1", manifest=None)
        assert_ok(shown)
        assert "+ note alpha: create (missing)" in shown.stdout

        # export: its section, loaded back identical
        exported = reconcile_sub(url, "export", "--kinds", "note", manifest=None)
        assert_ok(exported)
        assert yaml.safe_load(exported.stdout)["notes"] == [
            {"name": "alpha", "body": "first"}, {"name": "beta", "body": "second"}, {"name": "hand-made", "body": "not ours"}]

        # update and prune: only what it manages
        edited = write_manifest(tmp_path, _with_notes({"name": "alpha", "body": "edited"}, {"name": "gamma", "body": "g",
                                                                                             "protect": True}))
        pruned = reconcile(url, "--prune", "--apply", manifest=edited)
        assert_ok(pruned)
        assert "~ note alpha: update (changed in scheduler.yaml: body)\n      body: \"first\" → \"edited\"\n" in pruned.stdout
        assert "- note beta: delete (not declared)" in pruned.stdout
        assert query(url, "SELECT name, body FROM public.kind_notes ORDER BY name") == [
            ("alpha", "edited"), ("gamma", "g"), ("hand-made", "not ours")]
        assert query(url, "SELECT key, protect FROM reconciler.managed WHERE kind = 'note' AND NOT removed ORDER BY key") == [
            ("alpha", False), ("gamma", True)]
        last = history_rows(audited_db.superuser_url)[-1][3]
        [deleted] = [c for c in last if c["kind"] == "note" and c["action"] == "delete"]
        assert deleted["before"] == {"name": "beta", "body": "second"}
        assert_converged(url, edited, "--prune")

        # down: the managed, unprotected notes go; the protected one and the hand-made one stay
        down = reconcile_sub(url, "down", "--apply", manifest=edited)
        assert_ok(down)
        assert "- note alpha: delete (rollback)" in down.stdout
        assert query(url, "SELECT name FROM public.kind_notes ORDER BY name") == [("gamma",), ("hand-made",)]
        assert "note: deletes managed notes" in CliRunner().invoke(main, ["down", "--help"]).output
    assert "note" not in [k.name for k in kinds.REGISTRY]
