"""The rolling update as plain data: plan (``expressware_rollout_plan``), next step, record.

No Salt, no I/O, no clock of its own (``now`` is passed in): the ``rolling`` runner
loads a record, asks :func:`next_action` what to do, does it through Salt, records
the outcome with the ``mark_*`` functions and saves the record atomically. Unit
tests and the scale benchmark drive the same functions without daemons.

A record is a JSON-serialisable dict::

    {"id", "cluster", "version", "sia", "status", "reason", "created", "updated",
     "options": {...}, "order": [minion, ...],
     "nodes": {minion: {"phase", "before", "after", "group", "started", "finished", "error", "attempts"}},
     "groups": {group: {"arch", "os", "kernel", "nodes", "builder", "built", "staged", "rpms"}},
     "frontend": None | {"minion", "phase", "error", "before", "after", "note"},
     "canary": {"size", "released"}}

Node phases: ``pending`` (not touched), ``staged`` (RPMs copied to it), ``stopping``,
``installing``, ``waiting`` (the per-node procedure is under way), ``active`` (done,
on the target and active), ``failed``, ``skipped`` (already on the target, or
skipped by the operator). Rollout status: ``running``, ``paused`` (canary),
``halted`` (a failure; the cluster lease stays taken), ``aborted``, ``done``.
"""

import importlib.util
import os
import sys

PENDING, STAGED, STOPPING, INSTALLING, WAITING, ACTIVE, FAILED, SKIPPED = (
    "pending",
    "staged",
    "stopping",
    "installing",
    "waiting",
    "active",
    "failed",
    "skipped",
)
PHASES = (PENDING, STAGED, STOPPING, INSTALLING, WAITING, ACTIVE, FAILED, SKIPPED)
#: Phases in which a node may be down: the per-node procedure has begun.
IN_FLIGHT = (STOPPING, INSTALLING, WAITING)
#: Phases of a node that still has to be updated.
TODO = (PENDING, STAGED) + IN_FLIGHT + (FAILED,)

RUNNING, PAUSED, HALTED, ABORTED, DONE = "running", "paused", "halted", "aborted", "done"
#: Before the plan: the lease is taken and the pre-flight runs (nothing touched yet); refused by it (lease released).
PREFLIGHT, REFUSED = "preflight", "refused"
#: Waiting for its maintenance window (the rollout's status; the same word as a node's phase): it goes on by
#: itself at ``record["resume_at"]``, its driver and lease stay.
STATUSES = (PREFLIGHT, REFUSED, RUNNING, WAITING, PAUSED, HALTED, ABORTED, DONE)

MAX_LOG = 200


class RolloutError(ValueError):
    """A request that does not fit the record (bad order, resume of a finished rollout, ...)."""


#: The plan's functions (``expressware_rollout_plan``), under the names every caller uses.
PLAN_FUNCTIONS = ("group_key", "order_nodes", "did_not_answer", "preflight_problems", "new_record", "preflight_record")


def __getattr__(name):
    # Loaded on first use: the plan module uses this one's vocabulary (no import cycle at load time).
    if name in PLAN_FUNCTIONS:
        return getattr(_sibling("expressware_rollout_plan"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def refuse(record, reason, now, problems=None):
    """The pre-flight refused the rollout: nothing was touched (its lease is released)."""
    record["status"], record["reason"] = REFUSED, reason
    if problems is not None:
        record["problems"] = problems
    log(record, now, f"refused: {reason}")


def check_resumable(record):
    """Raise :class:`RolloutError` unless :func:`resume` can continue ``record``."""
    if record["status"] == DONE:
        raise RolloutError(f"rollout {record['id']} is already done")
    if record.get("rolled_back_by"):
        raise RolloutError(f"rollout {record['id']} was rolled back by {record['rolled_back_by']}")
    if record["status"] in (PREFLIGHT, REFUSED):
        raise RolloutError(
            f"rollout {record['id']} never started (it is {record['status']}: nothing was touched); "
            "run rolling.update again"
            + ("" if record["status"] == REFUSED else " (rolling.abort releases the lease it holds)")
        )


def log(record, now, message):
    record["log"].append({"time": now, "message": message})
    del record["log"][:-MAX_LOG]
    record["updated"] = now


def next_action(record):
    """What the driver does next: a tuple whose first item names the action.

    ``("build", group)``, ``("stage", group)``, ``("pause", reason)``,
    ``("update", minion)``, ``("frontend", minion)``, ``("finish",)``, or ``None``
    when the rollout is not running.
    """
    if record["status"] != RUNNING:
        return None
    for key, group in record["groups"].items():
        if not group["built"] and _group_todo(record, group):
            return ("build", key)
    nodes = record["nodes"]
    following = next((m for m in record["order"] if nodes[m]["phase"] in TODO), None)
    if following is not None:
        # A group's builder has its RPMs; every other node needs them staged first.
        group = record["groups"][nodes[following]["group"]]
        if not group["staged"] and following != group["builder"]:
            return ("stage", nodes[following]["group"])
    canary = record["canary"]
    if following is not None and not canary["released"]:
        done = sum(1 for m in record["order"] if nodes[m]["phase"] == ACTIVE)
        if done >= canary["size"]:
            return (
                "pause",
                f"canary: the first {canary['size']} node(s) are updated; check them, then run rolling.resume",
            )
    if following is not None:
        return ("update", following)
    if record["frontend"] and record["frontend"]["phase"] not in (ACTIVE, SKIPPED):
        return ("frontend", record["frontend"]["minion"])
    return ("finish",)


def background_action(record, tried=()):
    """Work the driver does while a node is in flight (it disrupts nothing):
    ``("stage", group)`` for a built group whose RPMs are not staged yet, or None.
    The first node of the order is always a group's builder, so the staging of
    every group overlaps the first node's update instead of preceding it.
    ``tried``: actions already tried during this node's flight (one that could not
    be done then, e.g. a builder that reboots, waits for :func:`next_action`)."""
    if record["status"] != RUNNING:
        return None
    for key, group in record["groups"].items():
        if group["built"] and not group["staged"] and _group_todo(record, group) and ("stage", key) not in tried:
            return ("stage", key)
    return None


def upcoming(record, current=None):
    """The node :func:`next_action` will name for an update once ``current`` (when
    given) is active, if nothing fails: the node worth preparing now. ``None`` when
    a canary pause, the frontend or the end comes first, or the rollout is stopped."""
    if record["status"] != RUNNING:
        return None
    nodes = record["nodes"]
    following = next((m for m in record["order"] if m != current and nodes[m]["phase"] in TODO), None)
    canary = record["canary"]
    if following is not None and not canary["released"]:
        done = sum(1 for m in record["order"] if nodes[m]["phase"] == ACTIVE or m == current)
        if done >= canary["size"]:
            return None
    return following


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


# The gate's format is the wire protocol's (``expressware_protocol``); kept here under their old names for the
# ``expressware_lease`` runner.
_protocol = _sibling("expressware_protocol")
new_gate, gate_rollout = _protocol.new_gate, _protocol.gate_rollout


def mark_prepared(record, minion, gate, now):
    """The node's job was dispatched ahead of its turn and waits for ``gate`` to be
    released; nothing on the node changes until then. Kept so that a later driver
    (after a master restart) can cancel a job still waiting."""
    record["nodes"][minion]["gate"] = gate
    log(record, now, f"{minion}: prepared (gate {gate})")


def open_gates(record):
    """Gates of prepared jobs that may still wait on their nodes: ``{minion: gate}``."""
    return {
        m: n["gate"] for m, n in record["nodes"].items() if n.get("gate") and n["phase"] in (PENDING, STAGED, FAILED)
    }


def gate_wanted(record, minion, gate, driver_alive):
    """Does the rollout still mean to release ``minion``'s prepared job waiting at
    ``gate``? ``(True, None)``, or ``(False, why)``: then nothing will release it (its
    driver is gone, the rollout stopped, another job took its place) and it should
    end, having changed nothing, rather than hold the node's state queue."""
    if record["status"] != RUNNING:
        return False, f"rollout {record['id']} is {record['status']}"
    if not driver_alive:
        return False, f"the driver of rollout {record['id']} is gone (rolling.resume prepares the node again)"
    node = record["nodes"].get(minion)
    if node is None or node.get("gate") != gate:
        return False, f"{minion} is not prepared at gate {gate} in rollout {record['id']}"
    return True, None


def clear_gate(record, minion):
    record["nodes"][minion]["gate"] = None


def _group_todo(record, group):
    return any(record["nodes"][m]["phase"] in TODO for m in group["nodes"])


def mark_built(record, key, rpms, now):
    group = record["groups"][key]
    group["built"], group["rpms"] = True, list(rpms)
    log(record, now, f"built {len(rpms)} RPM(s) for {key} on {group['builder']}")


def mark_staged(record, key, now):
    group = record["groups"][key]
    group["staged"] = True
    for minion in group["nodes"]:
        if record["nodes"][minion]["phase"] == PENDING:
            record["nodes"][minion]["phase"] = STAGED
    log(record, now, f"staged the RPMs of {key} on {len(group['nodes'])} node(s)")


def mark_phase(record, minion, phase, now):
    """Record a step of the per-node procedure (begin, or a phase the node reported)."""
    node = record["nodes"][minion]
    if phase not in IN_FLIGHT:
        raise RolloutError(f"{phase!r} is not a phase of the per-node procedure")
    if node["phase"] in (ACTIVE, SKIPPED):
        raise RolloutError(f"{minion} is already {node['phase']}")
    if node["phase"] == phase:
        return  # the node confirms the step the driver marked (its go-ahead's "stopping"): said once on record
    if node["phase"] not in IN_FLIGHT:
        node["started"] = now
        node["attempts"] += 1
        node["error"] = None
        node.pop("evidence", None)  # a long wait's note of an earlier attempt
    node["phase"] = phase
    log(record, now, f"{minion}: {phase}")


def unmark_begun(record, minion, now, reason):
    """The node's procedure was marked begun but it never received the go-ahead: it is
    back where it was (its RPMs staged or not) and the rollout halts."""
    node = record["nodes"][minion]
    if node["phase"] != STOPPING:
        raise RolloutError(f"{minion} is {node['phase']}, not at the beginning of its procedure")
    staged = record["groups"].get(node["group"], {}).get("staged")
    node.update(phase=STAGED if staged else PENDING, started=None, attempts=max(0, node["attempts"] - 1))
    halt(record, reason, now)


def mark_active(record, minion, version, now):
    node = record["nodes"][minion]
    node.update(phase=ACTIVE, after=version, finished=now, error=None)
    log(record, now, f"{minion}: active on {version}")


def mark_failed(record, minion, error, now, after=None):
    """The node failed: halt the rollout (no further node is touched)."""
    node = record["nodes"][minion]
    node.update(phase=FAILED, error=error, finished=now)
    if after is not None:
        node["after"] = after
    halt(record, f"{minion} failed: {error}", now)


def halt(record, reason, now):
    record["status"], record["reason"] = HALTED, reason
    log(record, now, f"halted: {reason}")


def pause(record, reason, now):
    record["status"], record["reason"] = PAUSED, reason
    log(record, now, f"paused: {reason}")


def wait_for_window(record, reason, until, now):
    """No node may start before ``until`` (its maintenance window): the rollout waits, and goes on by itself."""
    record["status"], record["reason"], record["resume_at"] = WAITING, reason, until
    log(record, now, f"waiting: {reason}")


def end_wait(record, now):
    """The maintenance window is open again: the walk goes on."""
    record["status"], record["reason"] = RUNNING, None
    record.pop("resume_at", None)
    log(record, now, "resumed")


def abort(record, now, reason="aborted by the operator"):
    if record["status"] in (DONE, REFUSED):
        raise RolloutError(f"rollout {record['id']} is already {record['status']}")
    record["status"], record["reason"] = ABORTED, reason
    log(record, now, reason)


def finish(record, now):
    record["status"], record["reason"] = DONE, None
    log(record, now, "done")


def mark_frontend(record, ok, now, error=None, version=None, note=None):
    record["frontend"].update(phase=ACTIVE if ok else FAILED, error=error)
    if version is not None:
        record["frontend"]["after"] = version
    if note is not None:
        record["frontend"]["note"] = note
    if ok:
        log(record, now, f"frontend {record['frontend']['minion']} updated" + (f" ({note})" if note else ""))
    else:
        halt(record, f"frontend {record['frontend']['minion']} failed: {error}", now)


def resume(record, now, skip=()):
    """Make a stopped rollout runnable again.

    Failed nodes are retried unless named in ``skip`` (then they are marked
    ``skipped``); a paused canary is released. Finished nodes stay finished.
    """
    check_resumable(record)
    skip = list(skip or [])
    unknown = [m for m in skip if m not in record["nodes"]]
    if unknown:
        raise RolloutError(f"skip names minions that are not in rollout {record['id']}: {', '.join(unknown)}")
    for minion in skip:
        node = record["nodes"][minion]
        if node["phase"] == ACTIVE:
            raise RolloutError(f"{minion} is already updated; nothing to skip")
        node.update(phase=SKIPPED, note="skipped by the operator")
        log(record, now, f"{minion}: skipped by the operator")
    for key, group in record["groups"].items():
        if group["built"] and not group["staged"] and record["nodes"][group["builder"]]["phase"] == SKIPPED:
            # Its RPMs reach the master with the staging: they may be only on the
            # skipped builder. The group is built again, on its next node.
            remaining = [m for m in record["order"] if m in group["nodes"] and record["nodes"][m]["phase"] in TODO]
            if remaining:
                log(
                    record,
                    now,
                    f"{key}: its builder {group['builder']} is skipped before its RPMs were staged; "
                    f"they are built again on {remaining[0]}",
                )
                group.update(built=False, rpms=[], builder=remaining[0])
    for minion in record["order"]:
        node = record["nodes"][minion]
        if node["phase"] == FAILED:
            node["phase"] = STAGED if record["groups"].get(node["group"], {}).get("staged") else PENDING
    if record["frontend"] and record["frontend"]["phase"] == FAILED:
        record["frontend"]["phase"] = PENDING
    if record["status"] == PAUSED:
        record["canary"]["released"] = True
    record["status"], record["reason"] = RUNNING, None
    record.pop("resume_at", None)  # a driver that died waiting: the walk looks at the window again
    log(record, now, "resumed")


def in_flight(record):
    """Minions whose procedure began but did not end (a driver died meanwhile)."""
    return [m for m in record["order"] if record["nodes"][m]["phase"] in IN_FLIGHT]


def summary(record):
    """A flat, stable view for ``salt-run --out=json``."""
    nodes = {}
    for minion, node in record["nodes"].items():
        nodes[minion] = {
            "phase": node["phase"],
            "before": node["before"],
            "after": node["after"],
            "error": node["error"],
            "note": node.get("note"),
            "seconds": round(node["finished"] - node["started"], 1) if node["finished"] and node["started"] else None,
        }
        if node["phase"] in IN_FLIGHT and node.get("evidence"):
            # In flight longer than it should take: how long, and what the node said when last asked.
            nodes[minion]["evidence"] = node["evidence"]
    counts = {}
    for node in record["nodes"].values():
        counts[node["phase"]] = counts.get(node["phase"], 0) + 1
    result = {
        "rollout": record["id"],
        "cluster": record["cluster"],
        "version": record["version"],
        "status": record["status"],
        "reason": record["reason"],
        "order": record["order"],
        "counts": counts,
        "builds": {
            key: {"builder": g["builder"], "built": g["built"], "nodes": len(g["nodes"])}
            for key, g in record["groups"].items()
        },
        "nodes": nodes,
        "frontend": record["frontend"],
    }
    if record["status"] == WAITING:
        result["resume_at"] = record.get("resume_at")
    for link in ("rollback_of", "rolled_back_by"):  # a rollback and the rollout it rolled back, both ways
        if record.get(link):
            result[link] = record[link]
    return result


def status_report(record, lease, driver_alive, goes_on_at=None):
    """``rolling.status``'s view of ``record``: its summary, the cluster's ``lease``, the pre-flight's problems, when
    a rollout waiting for its window goes on (``goes_on_at``, formatted), the health gate's hold or halt, whether
    its driver is alive (``driver_alive``) and what to do when it is not, and the last lines of its log."""
    result = summary(record)
    result["lease"] = lease
    if record.get("problems"):
        result["problems"] = record["problems"]
    if goes_on_at is not None:
        result["goes_on_at"] = goes_on_at
    if record.get("health"):
        # Who held the rollout (or halted it) for the cluster's health, and why.
        result["health"] = record["health"]
    if record["status"] in (RUNNING, WAITING, PREFLIGHT):
        result["driver"] = dict(record.get("driver") or {}, alive=driver_alive)
        if not driver_alive:
            result["comment"] = (
                "the driver of this rollout is gone (master restart?): run rolling.resume"
                if record["status"] in (RUNNING, WAITING)
                else "the driver of this rollout died in its pre-flight (nothing was touched); it "
                "holds the lease: rolling.abort releases it"
            )
    result["log"] = record["log"][-10:]
    return result
