"""Drill-down: organization → region → location → team → employee, each level within the viewer's scope.

A viewer starts at the top of their own scope (``start``): organization-wide roles at the
organization, a regional manager at their region, a store manager at their store, an employee at
themselves. They can go down from there but never above it or sideways: a level above the
viewer's scope level is a 404, and so is any id outside their scope (the hierarchy objects are
looked up through ``cem.scoping``, the same rule as every list and API). Children are scoped the
same way, so a store manager never sees a sibling store even in a region's list.

Children of each level:

- organization → its regions; region → its locations;
- location → its teams (``cem.Team``), then the employees who work there with no current team;
- team → its members (``Employee.current_team``);
- employee → none (the employee's own figures; contact-centre agents link to the agent dashboard).

Each node carries its key figures over the dashboard filters (``alignment.scope_selectors.
figures``), read from the rollup in one grouped query per page — a team's figures are its current
members' rows (as in the feedback metrics: moving an employee moves their history), a location's
and region's are the rows of what happened there — and, where alignment scores have been computed,
the node's latest overall alignment score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.http import Http404

from alignment import scope_selectors as sel
from cem.models import Employee, Location, Region, Team
from cem.scoping import scope_level

LEVELS = ("organization", "region", "location", "team", "employee")
_DEPTH = {level: i for i, level in enumerate(LEVELS)}
# The scope levels of cem.permissions.ROLE_SCOPE mapped onto drill-down levels.
_SCOPE_START = {
    "organization": "organization",
    "region": "region",
    "location": "location",
    "employee": "employee",
}
_MEMBERSHIP_ID = {"region": "region_id", "location": "location_id", "employee": "employee_id"}
MODELS = {"region": Region, "location": Location, "team": Team, "employee": Employee}


class DrillError(ValueError):
    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass
class Node:
    level: str
    id: int
    name: str
    figures: dict = field(default_factory=dict)
    alignment: object = None  # AlignmentScore or None
    kind: str = ""  # a location's kind / an employee's role
    is_agent: bool = False

    def as_dict(self) -> dict:
        score = self.alignment
        return {
            "level": self.level,
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "figures": self.figures,
            "alignment": None
            if score is None
            else {
                "value": None if score.value is None else float(score.value),
                "low": None if score.low is None else float(score.low),
                "high": None if score.high is None else float(score.high),
                "n": score.n,
                "period": score.period,
                "period_start": score.period_start.isoformat(),
                "score_id": score.pk,
            },
        }


@dataclass
class Drill:
    node: Node
    breadcrumbs: list[Node]  # from the viewer's start down to (excluding) the node
    children: list[Node]
    child_level: str | None
    start: tuple[str, int]

    def as_dict(self) -> dict:
        return {
            "level": self.node.level,
            "id": self.node.id,
            "node": self.node.as_dict(),
            "breadcrumbs": [{"level": b.level, "id": b.id, "name": b.name} for b in self.breadcrumbs],
            "child_level": self.child_level,
            "children": [c.as_dict() for c in self.children],
        }


def start(caller, organization) -> tuple[str, int]:
    """Where the viewer's drill-down begins: (level, id); 404 for a viewer with no scope."""
    scope = scope_level(caller.role)
    level = _SCOPE_START.get(scope)
    if level is None:
        raise Http404("No dashboard scope.")
    if level == "organization":
        return level, 0
    value = getattr(caller.membership, _MEMBERSHIP_ID[level], None)
    if value is None:
        raise Http404("No dashboard scope.")
    return level, value


def may_open(caller, level: str) -> bool:
    """Whether the level is at or below the viewer's scope level (never above it)."""
    level_of_scope = _SCOPE_START.get(scope_level(caller.role))
    return level_of_scope is not None and _DEPTH[level] >= _DEPTH[level_of_scope]


def resolve(caller, organization, level: str, pk) -> object:
    """The hierarchy object at ``level``/``pk`` if the viewer may open it, else 404."""
    if level not in _DEPTH:
        raise DrillError("level", f"One of {', '.join(LEVELS)}.")
    if not may_open(caller, level):
        raise Http404("Outside your part of the organization.")
    if level == "organization":
        return organization
    qs = MODELS[level].objects.filter(pk=pk)
    if level in ("location", "team"):
        qs = qs.select_related("region" if level == "location" else "location__region")
    elif level == "employee":
        qs = qs.select_related("current_team", "current_location__region")
    obj = caller.scoped(qs).first()
    if obj is None:
        raise Http404("Not found.")
    return obj


def _path(level: str, obj, organization) -> list[tuple[str, int, str]]:
    """(level, id, name) from the organization down to ``obj`` (obj included)."""
    org = ("organization", 0, organization.name)
    if level == "organization":
        return [org]
    if level == "region":
        return [org, ("region", obj.pk, obj.name)]
    if level == "location":
        return [org, ("region", obj.region_id, obj.region.name), ("location", obj.pk, obj.name)]
    if level == "team":
        loc = obj.location
        return [*_path("location", loc, organization), ("team", obj.pk, obj.name)]
    location = obj.current_location
    head = _path("location", location, organization) if location is not None else [org]
    if obj.current_team_id is not None:
        head.append(("team", obj.current_team_id, obj.current_team.name))
    return [*head, ("employee", obj.pk, obj.name)]


def name_of(level: str, obj) -> str:
    return obj.name


def breadcrumbs(caller, organization, level: str, obj) -> list[Node]:
    """The levels above ``obj`` from where the viewer's drill-down starts (none above it)."""
    first_level, first_id = start(caller, organization)
    crumbs, seen_start = [], False
    for lvl, cid, name in _path(level, obj, organization)[:-1]:
        seen_start = seen_start or (lvl == first_level and (lvl == "organization" or cid == first_id))
        if seen_start:
            crumbs.append(Node(lvl, cid, name))
    return crumbs


def _where(level: str, pk: int) -> dict:
    """The rollup filter of one node's own rows."""
    return {
        "organization": {},
        "region": {"location__region_id": pk},
        "location": {"location_id": pk},
        "team": {"employee__current_team_id": pk},
        "employee": {"employee_id": pk},
    }[level]


def _is_agent(employee) -> bool:
    location = employee.current_location
    return employee.role == Employee.Role.AGENT or (
        location is not None and location.kind == Location.Kind.CONTACT_CENTRE
    )


def _children(caller, level: str, obj) -> tuple[str | None, list[tuple[str, object]]]:
    if level == "organization":
        qs = caller.scoped(Region.objects.all()).order_by("name")
        return "region", [("region", r) for r in qs]
    if level == "region":
        qs = caller.scoped(Location.objects.filter(region_id=obj.pk)).order_by("name")
        return "location", [("location", loc) for loc in qs]
    if level == "location":
        teams = caller.scoped(Team.objects.filter(location_id=obj.pk)).order_by("name")
        loose = caller.scoped(
            Employee.objects.filter(current_location_id=obj.pk, current_team__isnull=True)
            .select_related("current_location")
            .order_by("name")
        )
        return "team", [("team", t) for t in teams] + [("employee", e) for e in loose]
    if level == "team":
        qs = caller.scoped(
            Employee.objects.filter(current_team_id=obj.pk)
            .select_related("current_location")
            .order_by("name")
        )
        return "employee", [("employee", e) for e in qs]
    return None, []


_KIND_ATTR = {"location": "kind", "employee": "role"}


def _kind_of(level: str, obj) -> str:
    attr = _KIND_ATTR.get(level)
    return getattr(obj, attr, "") if attr else ""


_GROUP = {
    "region": "location__region_id",
    "location": "location_id",
    "team": "employee__current_team_id",
    "employee": "employee_id",
}


def drill(caller, organization, filters, level: str, pk) -> Drill:
    """The node, its breadcrumbs (from the viewer's start) and its children with key figures."""
    obj = resolve(caller, organization, level, pk)
    node_id = 0 if level == "organization" else obj.pk
    child_level, children = _children(caller, level, obj)
    own = sel.figures_by(caller, filters, None, **_where(level, node_id)).get(None, sel.EMPTY_FIGURES)
    # One grouped query per child kind present: figures of every child at once.
    figures_of: dict[str, dict] = {}
    for kind in {k for k, _ in children}:
        ids = [c.pk for k, c in children if k == kind]
        # The same rows as the child's own page (not narrowed to the parent), so the figure in
        # the list is the figure one click further down.
        figures_of[kind] = sel.figures_by(caller, filters, _GROUP[kind], **{f"{_GROUP[kind]}__in": ids})
    scores_of: dict[str, dict] = {}
    for kind in {level, *(k for k, _ in children)}:
        ids = [node_id] if kind == level else [c.pk for k, c in children if k == kind]
        scores_of[kind] = sel.latest_scores(caller, filters, kind, ids)
    first_level, first_id = start(caller, organization)
    node = Node(
        level,
        node_id,
        name_of(level, obj),
        figures=own,
        alignment=scores_of[level].get(node_id),
        kind=_kind_of(level, obj),
        is_agent=level == "employee" and _is_agent(obj),
    )
    nodes = [
        Node(
            kind,
            child.pk,
            child.name,
            figures=figures_of[kind].get(child.pk, sel.EMPTY_FIGURES),
            alignment=scores_of[kind].get(child.pk),
            kind=_kind_of(kind, child),
            is_agent=kind == "employee" and _is_agent(child),
        )
        for kind, child in children
    ]
    return Drill(
        node=node,
        breadcrumbs=breadcrumbs(caller, organization, level, obj),
        children=nodes,
        child_level=child_level,
        start=(first_level, first_id),
    )
