"""Rollback from the record: which nodes a rollout changed, in what order they go back, to which version, with
which installer, and the arguments of the rollout that takes them back (``rolling.rollback``).

Plain Python (no Salt, no I/O, no clock): the runner loads the original's record, asks :func:`rollback_args` for
the rollback's arguments (or a :class:`RollbackError` saying why not), and runs them as a rollout of its own with
the update's driver: the same pre-flight, gates, health gate, lease and record. The downgrade is allowed only on
the way down from the version the original installed (``downgrade_from``, checked on each node by
``expressware.check_update`` and the state), ``enforce`` stays false.
"""

import copy
import importlib.util
import os
import re
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

#: Statuses of a rollout that can be rolled back: it is settled (no node in flight) and it started.
SETTLED = (core.HALTED, core.PAUSED, core.ABORTED, core.DONE)
#: The installer's names the update found its own by (the version in them is replaced).
_INSTALLER = re.compile(r"^(Dolphin_eXpressWare-|DIS_install_)(.+)(\.sh)$")
#: The installer of ``<version>`` when the original's name says nothing: the formula's file root.
DEFAULT_SIA = "salt://expressware/Dolphin_eXpressWare-{version}.sh"


class RollbackError(ValueError):
    """The rollout named cannot be rolled back (the reason says why); nothing was changed."""


def changed_nodes(record):
    """The nodes ``record`` changed, most recent first (the reverse of the order they were started in): those it
    made active on another version, and the node it failed on (started, perhaps down or half-installed)."""
    changed = []
    for position, minion in enumerate(record["order"]):
        node = record["nodes"][minion]
        moved = node["phase"] == core.ACTIVE and node["after"] != node["before"]
        if moved or node["phase"] == core.FAILED or node["phase"] in core.IN_FLIGHT:
            changed.append((node.get("started") or 0, position, minion))
    return [minion for _, _, minion in sorted(changed, reverse=True)]


def installer_for(sia, new, old):
    """The installer of ``old`` found as the update found its own (``sia``, the installer of ``new``): the same
    directory, the version in ``Dolphin_eXpressWare-<v>.sh``/``DIS_install_<v>.sh`` replaced; else the default
    ``salt://expressware/Dolphin_eXpressWare-<old>.sh``."""
    if isinstance(sia, str):
        directory, _, name = sia.rpartition("/")
        match = _INSTALLER.match(name)
        if match and match.group(2) == new:
            return f"{directory}/" * bool(directory) + match.group(1) + old + match.group(3)
    return DEFAULT_SIA.format(version=old)


def check(record, driver_alive):
    """Raise :class:`RollbackError` unless ``record`` can be rolled back (``driver_alive``: its driver runs)."""
    rid, status = record["id"], record["status"]
    if record.get("rolled_back_by"):
        raise RollbackError(f"rollout {rid} is already rolled back by {record['rolled_back_by']}")
    if status in (core.PREFLIGHT, core.REFUSED):
        raise RollbackError(f"rollout {rid} never started (it is {status}): nothing to roll back")
    if status in (core.RUNNING, core.WAITING):
        if driver_alive:
            raise RollbackError(
                f"rollout {rid} is still running (driver pid {(record.get('driver') or {}).get('pid')}): "
                "rolling.abort it first, then roll it back"
            )
        raise RollbackError(
            f"rollout {rid} was interrupted (its driver is gone): rolling.resume or rolling.abort it first"
        )
    if status not in SETTLED:
        raise RollbackError(f"rollout {rid} is {status}: it cannot be rolled back")
    if not changed_nodes(record):
        raise RollbackError(f"rollout {rid} changed no node: nothing to roll back")


def targets(record):
    """``{minion: version before}`` of the nodes to take back; :class:`RollbackError` when they differ (one
    rollback has one target version: the nodes are named) or a node had no version before."""
    nodes = changed_nodes(record)
    before = {minion: record["nodes"][minion]["before"] for minion in nodes}
    missing = sorted(minion for minion, version in before.items() if not version)
    if missing:
        raise RollbackError(f"no version on record before rollout {record['id']} for {', '.join(missing)}")
    versions = sorted(set(before.values()))
    if len(versions) > 1:
        by_version = "; ".join(
            f"{version}: {', '.join(sorted(m for m, v in before.items() if v == version))}" for version in versions
        )
        raise RollbackError(
            f"the nodes of rollout {record['id']} had different versions before ({by_version}): a rollback takes "
            "them back to one version; roll them back one version at a time with rolling.update enforce=True"
        )
    return before


def rollback_args(record, driver_alive, sia=None, node_timeout=None, timeout=60):
    """The arguments of the rollout that takes ``record``'s changed nodes back (those of ``rolling.update``, as
    ``expressware_rollout_args.update_args`` makes them, so the update's driver runs them): the nodes as a list
    target in the order they go back, the version they had before, the installer (``sia`` as given, else
    :func:`installer_for`), the original's options with no canary, no frontend, no ``enforce``, the downgrade
    allowed from the original's version, and the original's failed node allowed to be down at the pre-flight."""
    check(record, driver_alive)
    before = targets(record)
    nodes = list(before)
    old = next(iter(before.values()))
    given = {"cluster_members": None, "health_wait": 300}
    given.update(copy.deepcopy(record.get("args") or {}))
    options = copy.deepcopy(record["options"])
    options.update(
        canary=0,
        frontend=None,
        enforce=False,
        downgrade_from=record["version"],
        may_be_down=[m for m in nodes if record["nodes"][m]["phase"] != core.ACTIVE],
    )
    if node_timeout is not None:
        options["node_timeout"] = node_timeout
    given.update(
        tgt=nodes,
        tgt_type="list",
        version=old,
        sia=sia or installer_for(record.get("sia"), record["version"], old),
        cluster=record["cluster"],
        order=nodes,
        sort="name",
        timeout=timeout,
        options=options,
        rollback_of=record["id"],
    )
    return given


def plan_view(record, args):
    """What the rollback of ``record`` would do, as data (``rolling.rollback test=True`` adds the pre-flight's
    plan): the nodes in the order they go back, each one's version now by the record and the version it returns to,
    and the installer."""
    return {
        "rollback_of": record["id"],
        "cluster": record["cluster"],
        "version": args["version"],
        "sia": args["sia"],
        "downgrade_from": record["version"],
        "order": list(args["order"]),
        "nodes": {
            minion: {
                "phase": record["nodes"][minion]["phase"],
                "now": record["nodes"][minion]["after"],
                "back_to": record["nodes"][minion]["before"],
            }
            for minion in args["order"]
        },
    }


def link(original, rollback_id, now):
    """Mark ``original`` as rolled back by ``rollback_id`` (the rollback's record carries ``rollback_of``)."""
    original["rolled_back_by"] = rollback_id
    core.log(original, now, f"rolled back by {rollback_id}")
