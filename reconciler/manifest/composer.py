"""The composer: one manifest file's text into `LMap`/`LSeq`/scalars with their positions, within the
loader's limits (`reconciler.manifest.limits`).

`yaml.compose`'s steps (libyaml's C composer when available) give the nodes; `Composer.walk` turns them
into values with their file, line and column, plus the problems found on the way. A document without
anchors (nearly every manifest) takes a short walk instead (`Composer._build`, recursing at most
MAX_DEPTH levels), which leaves the positions in the nodes until something asks for one and hands
anything unusual back to the general walk. The general walk keeps duplicate keys visible (a MappingNode
holds pairs, not a dict), counts values with aliases expanded without expanding them (an alias is the
anchored node object itself), and uses an explicit stack, so no input makes it recurse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

import reconciler.manifest.limits as limits
from reconciler.errors import ManifestProblem
from reconciler.manifest.checks import Loc, format_path
from reconciler.manifest.positions import LMap, LSeq, Pos, mark_pos
from reconciler.manifest.types import quote

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"

# PyYAML's implicit types of plain scalars (`true`, `12`, `~`, `2024-01-01`...), by first character.
_IMPLICIT: dict[Any, list[tuple[str, Any]]] = _SafeLoader.yaml_implicit_resolvers
_ANY_FIRST = tuple(_IMPLICIT.get(None, ()))
_BY_FIRST = {first: (*pairs, *_ANY_FIRST) for first, pairs in _IMPLICIT.items() if first is not None}


#: Tags of plain scalars met before (`name`, `true`, `*/5 * * * *`...): a manifest repeats its keys and
#: many values. The first ones met are kept, up to the bound, so a long-running controller holds no more.
_PLAIN_TAGS: dict[str, str] = {}
_PLAIN_TAGS_MAX = 1024


class _Loader(_SafeLoader):  # type: ignore[misc]
    """The safe loader with the same tags, found by a shorter path.

    libyaml composes in C but calls three methods in Python for every node; PyYAML's general versions
    (path resolvers, list concatenation per call) are a large share of composing a big file
    (docs/benchmarks.md).
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            if not implicit[0]:  # quoted, or tagged `!`
                return _STR_TAG
            tag = _PLAIN_TAGS.get(value)
            if tag is None:
                tag = _plain_tag(value)
                if len(_PLAIN_TAGS) < _PLAIN_TAGS_MAX:
                    _PLAIN_TAGS[value] = tag
            return tag
        return limits.MAP_TAG if kind is yaml.MappingNode else limits.SEQ_TAG

    # The safe loader has no path resolvers, so PyYAML's versions of these return at once; as no-ops they
    # skip even that (they are called on entering and leaving every node).
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


def _plain_tag(value: str) -> str:
    """PyYAML's implicit type of a plain scalar: the first whose pattern matches, else a string."""
    for tag, regexp in _BY_FIRST.get(value[:1], _ANY_FIRST):
        if regexp.match(value):
            return tag
    return _STR_TAG


class Fatal(Exception):
    """A problem after which the file is not read further (already recorded in `Composer.problems`)."""


@dataclass(slots=True)
class _Frame:
    """A collection the walk is inside: its node, what it becomes, and how far the walk has got."""

    node: yaml.MappingNode | yaml.SequenceNode
    value: LMap | LSeq
    path: Loc
    next: int = 0  # the next child: an index into a sequence's items, or into a mapping's keys and values
    size: int = 1  # values in it so far, aliases expanded
    key: str | None = None  # a mapping's key whose value comes next
    key_pos: Pos | None = None

    def next_child(self) -> yaml.Node | None:
        i, items = self.next, self.node.value
        self.next += 1
        if isinstance(self.value, LSeq):
            return items[i] if i < len(items) else None
        return items[i >> 1][i & 1] if i >> 1 < len(items) else None


_OPEN = object()  # in `Composer.seen`: a collection the walk is still inside
_ABSENT = object()  # in `Composer.typed`: not met yet


class _Unusual(Exception):
    """Something the short walk leaves to the general one (`Composer._walk_fast_or_general`)."""


class Composer:
    """Composes one file's text into LMap/LSeq/scalars, enforcing the loader limits."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.problems: list[ManifestProblem] = []
        self.nodes = 0
        self.aliases = 0
        self.alias_marks: list[Any] | None = None  # where each alias is, in document order (read lazily)
        self.seen: dict[int, Any] = {}  # id(node) -> (value, size), or _OPEN
        self.typed: dict[tuple[str, str], Any] = {}  # (tag, text) -> a typed scalar's value, for the short walk

    def _pos(self, mark: Any) -> Pos:
        return Pos(self.file, mark.line + 1, mark.column + 1)

    def _problem(self, pos: Pos | None, field: str, message: str) -> None:
        self.problems.append(
            ManifestProblem(self.file, pos.line if pos else None, pos.column if pos else None, field, message)
        )

    def _fatal(self, pos: Pos | None, message: str) -> Fatal:
        self._problem(pos, "", message)
        return Fatal()

    def _prescan(self, text: str) -> None:
        loader = _Loader(text)
        try:
            found = limits.prescan(loader)
        finally:
            loader.dispose()
        if found is not None:
            raise self._fatal(self._pos(found.mark), found.message)

    def compose(self) -> Any:
        """The first document as plain values with positions (None when there is none); raises Fatal.

        `loader.check_node()`/`get_node()` are what `yaml.compose` runs, kept apart so that a second
        document is reported after the problems of the first, as the reader meets them.
        """
        cut = limits.deep_flow_cut(self.text)
        if cut is not None:
            # libyaml's scanner reads ahead through nested flow collections before the first event, and
            # newer builds stop at a depth limit of their own: scan only the text up to the first bracket
            # deeper than ours, where our limit trips, so the message is ours with every PyYAML.
            try:
                self._prescan(self.text[:cut])
            except Fatal:
                if self.problems[-1].message == limits.TOO_DEEP:
                    raise
                self.problems.clear()
            except yaml.YAMLError:
                pass  # the scan guessed wrong (a quote it misread): the whole text decides
        prescanned = limits.must_prescan(self.text)
        if prescanned:
            self._prescan(self.text)
        loader = _Loader(self.text)
        try:
            try:
                node = loader.get_node() if loader.check_node() else None
            except yaml.YAMLError:
                if not prescanned:
                    self._prescan(self.text)  # a limit exceeded before the error is reported instead
                raise
            root = None if node is None else self._walk_fast_or_general(node, loader)
            if loader.check_node():
                self._prescan(self.text)  # reports the second document where it starts
                raise self._fatal(None, limits.SECOND_DOCUMENT)
            return root
        finally:
            loader.dispose()

    def _walk_fast_or_general(self, root: yaml.Node, loader: Any) -> Any:
        # Without an anchor (`&`) there is no alias: no node is met twice, and none is counted more than once
        # (the node count was bounded before composing, by `must_prescan` or `prescan`). That common case
        # takes the short walk; whatever it does not build as plainly as the general walk would (a problem
        # to report, a tag to refuse), it leaves to the general walk, from the start, so every message and
        # its order are the general walk's.
        if "&" not in self.text:
            try:
                return self._build(root, 0, loader)
            except _Unusual:
                pass
        return self.walk(root, loader)

    def _build(self, node: Any, depth: int, loader: Any) -> LMap | LSeq:
        """A collection without aliases, built directly; raises _Unusual for anything the general walk reports."""
        if depth >= limits.MAX_DEPTH:
            raise _Unusual
        file, scalar_node, str_tag, constructed = self.file, yaml.ScalarNode, _STR_TAG, self._constructed
        pos = mark_pos(file, node)
        if node.__class__ is yaml.MappingNode and node.tag == limits.MAP_TAG:
            mapping = LMap(pos, file, node.value)
            for key_node, value_node in node.value:
                if key_node.__class__ is not scalar_node or key_node.tag != str_tag:
                    raise _Unusual  # a mapping or list as a key, `<<`, a key typed as a number...
                key = key_node.value
                if key in mapping or key == "<<":
                    raise _Unusual  # a duplicate key, or a merge key: problems to report
                if value_node.__class__ is scalar_node:
                    tag = value_node.tag
                    value = value_node.value if tag == str_tag else constructed(value_node, tag, loader)
                else:
                    value = self._build(value_node, depth + 1, loader)
                mapping[key] = value
            return mapping
        if node.__class__ is yaml.SequenceNode and node.tag == limits.SEQ_TAG:
            sequence = LSeq(pos, file, node.value)
            for item in node.value:
                if item.__class__ is scalar_node:
                    tag = item.tag
                    value = item.value if tag == str_tag else constructed(item, tag, loader)
                else:
                    value = self._build(item, depth + 1, loader)
                sequence.append(value)
            return sequence
        raise _Unusual  # a tagged collection (`!!set`, `!!omap`...)

    def _constructed(self, node: yaml.ScalarNode, tag: str, loader: Any) -> Any:
        """A typed scalar (`true`, `12`, `2024-01-01`) as `_scalar` makes it; raises _Unusual for a problem."""
        if tag == limits.MERGE_TAG:
            return node.value  # `<<` as a value is a string; as a key it never gets here
        known = self.typed.get((tag, node.value), _ABSENT)
        if known is not _ABSENT:
            return known
        if tag not in limits.SCALAR_TAGS:
            raise _Unusual
        try:
            value = loader.construct_object(node, deep=True)
        except Exception:  # reported by the general walk, as `_scalar` words it
            raise _Unusual from None
        self.typed[(tag, node.value)] = value  # immutable (a number, bool, None, date): safe to share
        return value

    def walk(self, root: yaml.Node, loader: Any) -> Any:
        """The node graph as LMap/LSeq/scalars, in document order, with an explicit stack."""
        stack: list[_Frame] = []
        todo: yaml.Node | None = root
        while True:
            if todo is not None:
                node, todo = todo, None
                done = self._visit(node, stack, loader)
                if done is not None:
                    if not stack:
                        return done[0]
                    self._add(stack[-1], *done)
            frame = stack[-1]
            todo = frame.next_child()
            if todo is None:
                stack.pop()
                self.seen[id(frame.node)] = (frame.value, frame.size)
                if not stack:
                    return frame.value
                self._add(stack[-1], frame.value, frame.value.pos, frame.size, None)

    def _visit(self, node: yaml.Node, stack: list[_Frame], loader: Any) -> tuple[Any, Pos, int, str | None] | None:
        """A scalar or alias as (value, position, size, key text); a collection is pushed (None)."""
        known = self.seen.get(id(node))
        if known is not None:  # the node appeared before: this is an alias of it
            pos = self._alias_pos()
            self.aliases += 1
            if self.aliases > limits.MAX_ALIASES:
                raise self._fatal(pos, limits.TOO_MANY_ALIASES)
            if known is _OPEN:
                raise self._fatal(pos, limits.alias_contains_itself(self._alias_name()))
            value, size = known
            self._count(pos, size)
            return value, pos, size, value if isinstance(value, str) else None
        pos = self._pos(node.start_mark)
        self._count(pos, 1)
        if isinstance(node, yaml.ScalarNode):
            value = self._scalar(node, pos, loader)
            self.seen[id(node)] = (value, 1)
            return value, pos, 1, node.value
        assert isinstance(node, yaml.MappingNode | yaml.SequenceNode)
        is_map = isinstance(node, yaml.MappingNode)
        if node.tag != (limits.MAP_TAG if is_map else limits.SEQ_TAG):
            raise self._fatal(pos, limits.unsupported_tag(str(node.tag)))
        if len(stack) >= limits.MAX_DEPTH:
            raise self._fatal(pos, limits.TOO_DEEP)
        path: Loc = ()
        if stack:
            top = stack[-1]
            if isinstance(top.value, LSeq):
                path = (*top.path, len(top.value))
            else:
                path = (*top.path, top.key) if top.key is not None else top.path
        self.seen[id(node)] = _OPEN
        stack.append(_Frame(node, LMap(pos) if is_map else LSeq(pos), path))
        return None

    def _add(self, frame: _Frame, value: Any, pos: Pos, size: int, key_text: str | None) -> None:
        container = frame.value
        frame.size += size
        if isinstance(container, LSeq):
            container.append(value)
            container.item_pos.append(pos)
            return
        if frame.key is None:  # this value is a key
            if key_text is None:
                raise self._fatal(pos, "mapping keys must be plain strings, not mappings or lists")
            if key_text == "<<":
                self._problem(pos, format_path(frame.path), "YAML merge keys (<<) are not supported")
            frame.key, frame.key_pos = key_text, pos
            return
        key, key_pos = frame.key, frame.key_pos
        frame.key = frame.key_pos = None
        if key == "<<":
            return
        if key in container:
            first = container.key_pos[key]
            self._problem(
                key_pos, format_path(frame.path), f"duplicate key {quote(key)} (first at line {first.line})"
            )
        container[key] = value
        container.key_pos[key] = key_pos  # type: ignore[assignment]
        container.val_pos[key] = pos

    def _count(self, pos: Pos, n: int) -> None:
        self.nodes += n
        if self.nodes > limits.MAX_NODES:
            raise self._fatal(pos, limits.TOO_MANY_VALUES)

    def _alias_events(self) -> list[Any]:
        """Every alias event (up to one over the limit) in document order, from the parser."""
        if self.alias_marks is None:
            self.alias_marks = []
            loader = _Loader(self.text)
            try:
                while len(self.alias_marks) <= limits.MAX_ALIASES and loader.check_event():
                    event = loader.get_event()
                    if isinstance(event, yaml.AliasEvent):
                        self.alias_marks.append(event)
            finally:
                loader.dispose()
        return self.alias_marks

    def _alias_pos(self) -> Pos:
        # The walk meets aliases in the order the parser reads them, but a node does not say where the
        # alias that led to it is written: the parser's events do.
        return self._pos(self._alias_events()[self.aliases].start_mark)

    def _alias_name(self) -> str:
        return str(self._alias_events()[self.aliases - 1].anchor)

    def _scalar(self, node: yaml.ScalarNode, pos: Pos, loader: Any) -> Any:
        tag = node.tag
        if tag == _STR_TAG or tag == limits.MERGE_TAG:  # `<<` is reported where it is used as a key
            return node.value
        if tag not in limits.SCALAR_TAGS:
            raise self._fatal(pos, limits.unsupported_tag(tag))
        try:
            return loader.construct_object(node, deep=True)
        except Exception:  # e.g. `!!int abc`; PyYAML raises assorted types here
            raise self._fatal(pos, f"cannot read {quote(node.value)} as {tag.rsplit(':', 1)[-1]}") from None

