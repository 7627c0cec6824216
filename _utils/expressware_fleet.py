"""Fleets: one target that spans clusters, each cluster walked one node at a time, clusters side by side.

Plain Python (no Salt, no I/O, no clock: ``now`` is passed in), like the rollout core (``expressware_rollout``):
which cluster a node belongs to, the waves clusters are walked in (``waves``, ``canary``), which clusters may start
(``parallel``), what a cluster's halt stops (``halt``), and the fleet's record and report. Each cluster is an
ordinary rollout with its own record, lease and gates; the fleet's record only says which rollout walks which
cluster and where each stands. The runner's side (a driver per cluster, in threads) is ``expressware_fleet_run``.

A fleet record is a JSON-serialisable dict::

    {"id": "fleet-...", "kind": "fleet", "version", "status", "reason", "created", "updated",
     "options": {"parallel", "halt", "canary", "waves"},
     "waves": [[cluster, ...], ...],
     "clusters": {cluster: {"wave", "nodes": [minion, ...], "rollout": id | None, "status", "reason"}},
     "log": [[when, message], ...]}

A cluster's status is ``pending`` (not started), ``not started`` (the fleet stopped before it), or its rollout's
status as the rollout's driver left it (``done``, ``halted``, ``aborted``, ``refused``, ``paused``, ...).
"""

import re

#: ``halt``: a failure stops its own cluster (default) or every cluster of the fleet (after its node in flight).
HALT_CLUSTER, HALT_FLEET = "cluster", "fleet"
HALT_POLICIES = (HALT_CLUSTER, HALT_FLEET)
#: The fleet's and a cluster's own statuses (the others are a rollout's).
PENDING, NOT_STARTED, RUNNING, DONE, HALTED, ABORTED = "pending", "not started", "running", "done", "halted", "aborted"
#: A cluster's rollout statuses that say it is still going.
GOING = ("preflight", "running", "waiting")
MAX_LOG = 200

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class FleetError(ValueError):
    """A request that does not fit the fleet (a bad cluster name, a node in no wave, ...)."""


def is_fleet_id(value):
    return isinstance(value, str) and value.startswith("fleet-")


def group_by_cluster(minion_clusters, default):
    """``{cluster: [minion, ...]}`` (sorted) from ``{minion: its expressware:cluster or None}``: a minion without
    one belongs to ``default``. A name that could not be a file name (what a lease is) is refused, naming the
    minion."""
    groups = {}
    for minion in sorted(minion_clusters):
        cluster = minion_clusters[minion]
        if cluster is None or cluster == "":
            cluster = default
        if not isinstance(cluster, str) or not _NAME_RE.match(cluster):
            raise FleetError(
                f"{minion}: its expressware:cluster {cluster!r} must be 1-64 letters, digits, '.', '_' or '-'"
            )
        groups.setdefault(cluster, []).append(minion)
    return groups


def plan_waves(groups, wave_minions=None, canary=0):
    """The waves clusters are walked in, each a gate for the next: a list of lists of cluster names.

    ``wave_minions``: the minions each of the operator's ``waves`` targets matched, in order; a cluster goes with
    the first wave that holds any of its nodes (a wave takes whole clusters), and a targeted cluster in no wave is
    refused. ``canary``: without waves, the first ``canary`` clusters (by name) are a wave of their own."""
    clusters = sorted(groups)
    if wave_minions is not None:
        if canary:
            raise FleetError("canary and waves: give one of them (a first wave is the canary)")
        waves, placed = [], set()
        for number, minions in enumerate(wave_minions, 1):
            wave = [c for c in clusters if c not in placed and set(groups[c]) & set(minions)]
            if not wave:
                raise FleetError(f"wave {number} holds no targeted cluster that an earlier wave does not")
            placed.update(wave)
            waves.append(wave)
        unplaced = [c for c in clusters if c not in placed]
        if unplaced:
            raise FleetError(f"cluster(s) {', '.join(unplaced)} are in no wave (a wave names whole clusters' nodes)")
        return waves
    if canary and canary < len(clusters):
        return [clusters[:canary], clusters[canary:]]
    return [clusters]


def new_fleet(fleet_id, version, groups, waves, options, now):
    """A fleet's record before any cluster starts."""
    record = {
        "id": fleet_id,
        "kind": "fleet",
        "version": version,
        "status": RUNNING,
        "reason": None,
        "created": now,
        "updated": now,
        "options": dict(options),
        "waves": [list(wave) for wave in waves],
        "clusters": {},
        "log": [],
    }
    for number, wave in enumerate(waves):
        for cluster in wave:
            record["clusters"][cluster] = {
                "wave": number,
                "nodes": list(groups[cluster]),
                "rollout": None,
                "status": PENDING,
                "reason": None,
            }
    log(record, now, f"fleet of {len(groups)} cluster(s) in {len(waves)} wave(s) for {version}")
    return record


def log(record, now, message):
    record["log"].append([now, message])
    del record["log"][:-MAX_LOG]


def running(record):
    """The clusters whose rollout was started and is still going."""
    return [c for c, entry in record["clusters"].items() if entry["rollout"] and entry["status"] in GOING]


def current_wave(record):
    """The first wave with a cluster that is not done (None: all done)."""
    for number, wave in enumerate(record["waves"]):
        if any(record["clusters"][c]["status"] != DONE for c in wave):
            return number
    return None


def startable(record):
    """The clusters that may start now: pending ones of the current wave, up to ``parallel`` going at once. None
    while a cluster of an earlier wave is not done: each wave is a gate for the next."""
    if record["status"] != RUNNING:
        return []
    number = current_wave(record)
    if number is None:
        return []
    wave = record["waves"][number]
    stopped = [c for c in wave if record["clusters"][c]["status"] not in (PENDING, DONE) + GOING]
    if stopped and record["options"].get("halt") == HALT_FLEET:
        return []
    pending = [c for c in wave if record["clusters"][c]["status"] == PENDING]
    parallel = record["options"].get("parallel")
    room = len(pending) if not parallel else max(0, parallel - len(running(record)))
    return pending[:room]


def mark_started(record, cluster, rollout_id, now):
    entry = record["clusters"][cluster]
    entry.update(rollout=rollout_id, status="preflight", reason=None)
    log(record, now, f"{cluster}: rollout {rollout_id} started ({len(entry['nodes'])} node(s))")


def mark_ended(record, cluster, status, reason, now):
    """A cluster's rollout ended (its driver returned) with ``status``. Returns the clusters to stop: with
    ``halt=fleet`` a cluster that did not finish stops the others (after the node each has in flight)."""
    entry = record["clusters"][cluster]
    entry.update(status=status, reason=reason)
    log(record, now, f"{cluster}: {status}" + (f": {reason}" if reason else ""))
    if status == DONE or record["options"].get("halt") != HALT_FLEET:
        return []
    return [c for c in running(record) if c != cluster]


def mark_progress(record, cluster, status):
    """The cluster's rollout reports ``status`` while it goes (``running``, ``waiting``)."""
    record["clusters"][cluster]["status"] = status


def finish(record, now, aborted=False):
    """Nothing is going and nothing may start: the fleet is done, or says which clusters did not finish."""
    left = {c: e for c, e in record["clusters"].items() if e["status"] != DONE}
    for entry in left.values():
        if entry["status"] == PENDING:
            entry["status"] = NOT_STARTED
    if not left:
        record.update(status=DONE, reason=None)
    else:
        record["status"] = ABORTED if aborted else HALTED
        record["reason"] = "not finished: " + ", ".join(
            f"{c} ({e['status']}{': ' + e['reason'] if e['reason'] else ''})" for c, e in sorted(left.items())
        )
    log(record, now, record["status"] + (f": {record['reason']}" if record["reason"] else ""))


def check_resumable(record):
    if record["status"] == DONE:
        raise FleetError(f"fleet {record['id']} is done; nothing to resume")


def resume(record, now):
    """Make a stopped fleet runnable again: clusters that did not start are pending again; the clusters whose
    rollout stopped are returned (their rollouts are resumed, not started anew)."""
    check_resumable(record)
    again = []
    for cluster, entry in sorted(record["clusters"].items()):
        if entry["status"] == DONE:
            continue
        if entry["rollout"] is None:
            entry.update(status=PENDING, reason=None)
        else:
            again.append(cluster)
    record.update(status=RUNNING, reason=None)
    log(record, now, "resumed" + (f"; rollouts resumed: {', '.join(again)}" if again else ""))
    return again


def report(record, summaries):
    """``rolling.status`` of a fleet: a line per cluster and a total. ``summaries``: ``{rollout id: its
    summary}`` (``expressware_rollout.summary``) for the clusters that have a rollout on record."""
    clusters, nodes, statuses = {}, {}, {}
    for cluster, entry in sorted(record["clusters"].items()):
        summary = summaries.get(entry["rollout"]) if entry["rollout"] else None
        counts = summary["counts"] if summary else {"pending": len(entry["nodes"])}
        status = summary["status"] if summary else entry["status"]
        line = {
            "rollout": entry["rollout"],
            "wave": entry["wave"] + 1,
            "status": status,
            "reason": (summary or {}).get("reason") or entry["reason"],
            "nodes": len(entry["nodes"]),
            "counts": counts,
        }
        clusters[cluster] = line
        statuses[status] = statuses.get(status, 0) + 1
        for phase, number in counts.items():
            nodes[phase] = nodes.get(phase, 0) + number
    return {
        "fleet": record["id"],
        "version": record["version"],
        "status": record["status"],
        "reason": record["reason"],
        "waves": record["waves"],
        "clusters": clusters,
        "total": {"clusters": len(clusters), "by_status": statuses, "nodes": nodes},
        "log": record["log"][-10:],
    }
