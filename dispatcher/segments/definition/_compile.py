"""A ``SegmentDefinition`` compiled once into one predicate over endpoint records.

Compiling goes through a small tree first (``All`` / ``Any`` / ``Not`` over checks)
so it can be simplified before any closure exists:

* criteria that impose nothing (an empty dimensions object, a group without sources)
  fold away, as do constant results (``Include: NONE`` over an empty group);
* nested ANDs (a group's dimensions inside ``Include: ALL``) and nested ORs merge
  into one level, so a record costs one call per check plus one per level;
* within an AND or an OR, cheap checks (set lookups) run before dear ones (dates,
  distances); every AND / OR stops at its first decisive answer.

Python function calls dominate the cost of evaluating a record, which is why the tree
is flattened rather than mirrored in closures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from dispatcher.segments.definition._checks import (
    attribute_check,
    gps_check,
    metric_check,
    recency_check,
    set_check,
)
from dispatcher.segments.definition._model import (
    Dimensions,
    Group,
    ImportedIds,
    Predicate,
    SegmentDefinition,
)


def never(_d: dict[str, Any], _e: str) -> bool:
    return False


def always(_d: dict[str, Any], _e: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class Check:
    run: Predicate
    cost: int  # relative: 1 a set lookup ... 8 a distance


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Any_:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node: TypeAlias = "Check | All | Any_ | Not | bool"


def cost(node: Node) -> int:
    if isinstance(node, Check):
        return node.cost
    if isinstance(node, All | Any_):
        return sum(cost(i) for i in node.items)
    if isinstance(node, Not):
        return cost(node.item)
    return 0


def all_of(items: Iterable[Node]) -> Node:
    flat: list[Node] = []
    for item in items:
        if item is False:
            return False
        if item is True:
            continue
        flat.extend(item.items if isinstance(item, All) else (item,))
    if not flat:
        return True
    return flat[0] if len(flat) == 1 else All(tuple(sorted(flat, key=cost)))


def any_of(items: Iterable[Node]) -> Node:
    flat: list[Node] = []
    for item in items:
        if item is True:
            return True
        if item is False:
            continue
        flat.extend(item.items if isinstance(item, Any_) else (item,))
    if not flat:
        return False
    return flat[0] if len(flat) == 1 else Any_(tuple(sorted(flat, key=cost)))


def not_(item: Node) -> Node:
    if isinstance(item, bool):
        return not item
    return item.item if isinstance(item, Not) else Not(item)


def combine(how: str, items: list[Node]) -> Node:
    """ALL / ANY / NONE over ``items``; an empty list imposes nothing, whatever ``how``."""
    if not items:
        return True
    if how == "ALL":
        return all_of(items)
    if how == "ANY":
        return any_of(items)
    return not_(any_of(items))


def dimensions_node(dims: Dimensions, now: datetime) -> Node:
    """Every criterion of one dimensions object (AND)."""
    checks: list[Node] = [Check(set_check(c), 1) for c in dims.sets]
    checks += [Check(metric_check(c), 2) for c in dims.metrics]
    checks += [Check(attribute_check(c), _ATTRIBUTE_COST[c.type]) for c in dims.attributes]
    if dims.recency is not None:
        checks.append(Check(recency_check(dims.recency, now), 3))
    if dims.gps is not None:
        checks.append(Check(gps_check(dims.gps), 8))
    return all_of(checks)


_ATTRIBUTE_COST = {"INCLUSIVE": 2, "EXCLUSIVE": 2, "CONTAINS": 4,
                   "BEFORE": 6, "AFTER": 6, "ON": 6, "BETWEEN": 6}  # fmt: skip


def members_check(ids: ImportedIds) -> Predicate:
    """In an imported segment: the endpoint's Id is listed, or its ``User.UserId`` is."""
    endpoints, users = ids.endpoint_ids, ids.user_ids
    if not users:
        return lambda _d, e: e in endpoints

    def check(d: dict[str, Any], e: str) -> bool:
        if e in endpoints:
            return True
        user = d.get("User")
        if type(user) is dict:
            uid = user.get("UserId")
            return type(uid) is str and uid in users
        return False

    return check


class _Compiler:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.done: dict[SegmentDefinition, Node] = {}

    def segment(self, definition: SegmentDefinition) -> Node:
        if definition in self.done:  # a base segment shared by several groups
            return self.done[definition]
        parts: list[Node] = []
        if definition.imported is not None:
            parts.append(Check(members_check(definition.imported), 1))
        parts.append(dimensions_node(definition.dimensions, self.now))
        if definition.groups:
            parts.append(combine(definition.include, [self.group(g) for g in definition.groups]))
        node = self.done[definition] = all_of(parts)
        return node

    def group(self, group: Group) -> Node:
        sources = combine(group.source_type, [self.segment(s) for s in group.sources])
        dims = combine(group.type, [dimensions_node(d, self.now) for d in group.dimensions])
        return all_of([sources, dims])


def build(node: Node) -> Predicate:
    """The closure of a simplified tree."""
    if node is True:
        return always
    if node is False:
        return never
    if isinstance(node, Check):
        return node.run
    if isinstance(node, Not):
        inner = build(node.item)
        return lambda d, e: not inner(d, e)
    ps = [build(i) for i in node.items]
    if isinstance(node, All):
        return _every(ps)
    return _some(ps)


def _every(ps: list[Predicate]) -> Predicate:
    # Fixed arities are spelled out: a loop over a tuple costs more than the calls.
    if len(ps) == 2:
        a, b = ps
        return lambda d, e: a(d, e) and b(d, e)
    if len(ps) == 3:
        a, b, c = ps
        return lambda d, e: a(d, e) and b(d, e) and c(d, e)
    if len(ps) == 4:
        a, b, c, f = ps
        return lambda d, e: a(d, e) and b(d, e) and c(d, e) and f(d, e)
    checks = tuple(ps)

    def every(d: dict[str, Any], e: str) -> bool:
        for p in checks:
            if not p(d, e):
                return False
        return True

    return every


def _some(ps: list[Predicate]) -> Predicate:
    if len(ps) == 2:
        a, b = ps
        return lambda d, e: a(d, e) or b(d, e)
    if len(ps) == 3:
        a, b, c = ps
        return lambda d, e: a(d, e) or b(d, e) or c(d, e)
    if len(ps) == 4:
        a, b, c, f = ps
        return lambda d, e: a(d, e) or b(d, e) or c(d, e) or f(d, e)
    checks = tuple(ps)

    def some(d: dict[str, Any], e: str) -> bool:
        for p in checks:
            if p(d, e):
                return True
        return False

    return some


def compile_definition(definition: SegmentDefinition, *, now: datetime) -> Predicate:
    """The predicate ``matches(definition, endpoint_id) -> bool`` of a segment.

    ``now`` (timezone-aware) is the instant Recency is measured from: the run's start,
    so every record of a run is judged against the same clock.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("'now' must be a timezone-aware datetime")
    return build(_Compiler(now).segment(definition))


__all__ = ["always", "compile_definition", "never"]
