"""The plan of a rolling update as plain data: which nodes, in what order, in which build groups, from the
pre-flight's facts; the record a rollout starts with. Loaded through ``expressware_rollout`` (whose names these
functions keep: ``expressware_rollout.new_record`` is this module's), the record's vocabulary is that module's."""

import copy
import importlib.util
import os
import sys


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


core = _sibling("expressware_rollout")


def group_key(grains):
    """Nodes that can share binary RPMs: same CPU architecture, OS release and kernel."""
    os_name = f"{grains.get('os', '?')}{grains.get('osrelease', '')}"
    return f"{grains.get('cpuarch', '?')}/{os_name}/{grains.get('kernelrelease', '?')}"


def order_nodes(minions, order=None, sort="name"):
    """Explicit ``order`` first (every name must be a target), then the rest by ``sort``."""
    minions = list(minions)
    if sort not in ("name", "reverse"):
        raise core.RolloutError(f"sort must be 'name' or 'reverse', not {sort!r}")
    order = list(order or [])
    unknown = [m for m in order if m not in minions]
    if unknown:
        raise core.RolloutError(f"order names minions that are not targeted: {', '.join(map(str, unknown))}")
    if len(set(order)) != len(order):
        raise core.RolloutError("order names a minion twice")
    rest = sorted((m for m in minions if m not in order), reverse=(sort == "reverse"))
    return order + rest


def did_not_answer(fact):
    """Is ``fact`` (a minion's ``expressware.preflight`` answer) no answer at all?"""
    return fact in (None, False)


def preflight_problems(expected, facts, version, may_be_down=()):
    """Everything that must hold before any node is touched, as ``[(minion, problem)]``.

    ``expected``: minions the target matched; ``facts``: what each answered
    (``expressware.preflight``), a non-dict meaning it did not answer properly; ``may_be_down``: nodes that may
    be inactive (a rollback's node the original failed on: it goes back first, nothing else is down meanwhile).
    """
    problems = []
    if not expected:
        return [(None, "the target matched no minion")]
    for minion in sorted(expected):
        fact = facts.get(minion)
        if not isinstance(fact, dict):
            problems.append((minion, "did not answer" if did_not_answer(fact) else f"error: {fact}"))
            continue
        if fact.get("error"):
            problems.append((minion, fact["error"]))
            continue
        decision, state = fact["decision"], fact["node_state"]
        if decision["action"] == "refuse":
            problems.append((minion, f"refused: {decision['reason']}"))
        # (One that may be down but has nothing to do would be skipped while it is down.)
        if not state["active"] and (minion not in may_be_down or decision["action"] == "none"):
            problems.append((minion, "node is not active: " + "; ".join(state["reasons"])))
        if decision["action"] != "none" and fact.get("sia_error"):
            problems.append((minion, f"installer not reachable: {fact['sia_error']}"))
    return problems


def new_record(rollout_id, cluster, version, sia, facts, options, now, order=None, sort="name", frontend_fact=None):
    """Plan a rollout from pre-flight facts (which all passed :func:`preflight_problems`);
    ``frontend_fact``: the frontend's pre-flight (``expressware.frontend_preflight``)."""
    nodes, groups = {}, {}
    sequence = order_nodes(facts, order, sort)
    for minion in sequence:
        fact = facts[minion]
        todo = fact["decision"]["action"] != "none"
        key = group_key(fact.get("grains", {}))
        nodes[minion] = {
            "phase": core.PENDING if todo else core.SKIPPED,
            "before": fact.get("installed"),
            "after": None if todo else fact.get("installed"),
            "action": fact["decision"]["action"],
            "group": key,
            "workdir": fact.get("workdir"),
            "started": None,
            "finished": None,
            "error": None,
            "attempts": 0,
            "note": None if todo else "already on the target",
            "gate": None,  # the gate of its prepared job, while one waits (mark_prepared)
        }
        if todo:
            grains = fact.get("grains", {})
            group = groups.setdefault(
                key,
                {
                    "arch": grains.get("cpuarch"),
                    "os": f"{grains.get('os', '')} {grains.get('osrelease', '')}".strip(),
                    "kernel": grains.get("kernelrelease"),
                    "nodes": [],
                    "builder": None,
                    "built": False,
                    "staged": False,
                    "rpms": [],
                },
            )
            group["nodes"].append(minion)
            group["builder"] = group["builder"] or minion
    if not options.get("build", True):
        for group in groups.values():
            group["built"] = group["staged"] = True  # each node's installer builds for itself
    record = {
        "id": rollout_id,
        "cluster": cluster,
        "version": version,
        "sia": sia,
        "status": core.RUNNING,
        "reason": None,
        "created": now,
        "updated": now,
        "options": copy.deepcopy(options),
        "order": [m for m in sequence if nodes[m]["phase"] != core.SKIPPED],
        "nodes": nodes,
        "groups": groups,
        "frontend": _frontend(options.get("frontend"), frontend_fact or {}),
        "canary": {"size": int(options.get("canary") or 0), "released": not options.get("canary")},
        "log": [],
    }
    skipped = len(nodes) - len(record["order"])
    core.log(record, now, f"planned {len(record['order'])} node(s) to update, {skipped} skipped")
    return record


def preflight_record(rollout_id, cluster, version, sia, options, now):
    """The record of a rollout that holds its cluster's lease and runs its pre-flight: nothing planned or touched
    yet, but who holds the lease and why is on record (should the pre-flight hang or its driver be killed)."""
    record = {
        "id": rollout_id,
        "cluster": cluster,
        "version": version,
        "sia": sia,
        "status": core.PREFLIGHT,
        "reason": None,
        "created": now,
        "updated": now,
        "options": copy.deepcopy(options),
        "order": [],
        "nodes": {},
        "groups": {},
        "frontend": None,
        "canary": {"size": 0, "released": True},
        "log": [],
    }
    core.log(record, now, "the update lease is taken; pre-flight")
    return record


def _frontend(minion, fact):
    if not minion:
        return None
    todo = (fact.get("decision") or {}).get("action", "install") != "none"
    return {
        "minion": minion,
        "phase": core.PENDING if todo else core.SKIPPED,
        "error": None,
        "before": fact.get("installed"),
        "after": None if todo else fact.get("installed"),
        "note": None if todo else "already on the target",
    }
