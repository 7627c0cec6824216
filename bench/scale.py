"""Scale of the rollout logic without daemons: ``expressware_rollout`` + ``RolloutStore`` on N made-up nodes.

The loop mirrors ``_utils/expressware_driver.py`` (``Driver.run`` / ``step`` / ``do_*``) and
``_utils/expressware_driver_node.py`` (``do_update`` / ``await_node``) step for step,
minus Salt:

* ``new_record`` from pre-flight facts, ``record["args"]`` and ``record["driver"]`` added, one save;
* then ``next_action`` until it returns None, one save after every action (the run loop);
* the first node is prepared while the builds run (``upcoming`` + ``mark_prepared`` + save);
* per node (``do_update``): ``order.index`` (its position), ``mark_phase(stopping)`` + save, the release of its
  prepared job (``clear_gate`` + save), the staging done while the first node is down (``background_action``,
  ``mark_staged`` + save), then the three phase events the state sends (``stopping``, ``installing``,
  ``waiting``), each ``mark_phase`` + save, the next node prepared at ``installing`` (+ save), then
  ``mark_active`` (a save of a step that changed one node is ``RolloutStore.save_node``, an appended line, as in
  the runner); the runner's progress lines (``say``) go into the record's log as they do in the runner;
* at the end one more save and ``summary``.

That is 7 saves per node, as in the runner. The code under test is loaded from the repository's ``_utils/``.
"""

import cProfile
import importlib.util
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_util(name):
    """The repository's ``_utils/<name>.py`` (what the runner loads), not an installed copy."""
    path = REPO / "_utils" / f"{name}.py"
    key = f"_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


rollout = load_util("expressware_rollout")
store_lib = load_util("expressware_store")

GRAINS = [
    {"cpuarch": "x86_64", "os": "Rocky", "osrelease": "9.3", "kernelrelease": "5.14.0-362.el9.x86_64"},
    {"cpuarch": "x86_64", "os": "Rocky", "osrelease": "9.3", "kernelrelease": "5.14.0-427.el9.x86_64"},
]
OPTIONS = {
    "reboot": False,
    "enforce": False,
    "applications": ["ndbmtd"],
    "node_timeout": 1800,
    "compat": None,
    "canary": 0,
    "frontend": None,
    "build": True,
}
RPMS = [f"Dolphin-{p}-5.26.0-1.x86_64.rpm" for p in ("KOSIF", "PX", "IRM", "NodeManager", "SISCI", "SuperSockets")]


def make_facts(count, groups=2):
    """Pre-flight answers of ``count`` nodes (``expressware.preflight``'s shape), spread over ``groups`` kernels."""
    width = len(str(count))
    facts = {}
    for i in range(count):
        facts[f"node{i + 1:0{width}d}"] = {
            "decision": {
                "action": "install",
                "reason": "5.25.2 -> 5.26.0: same MAJOR, rolling update allowed",
                "installed": "5.25.2",
            },
            "node_state": {
                "state": "active",
                "active": True,
                "reasons": [],
                "installed": "5.25.2",
                "running": "5.25.2",
            },
            "installed": "5.25.2",
            "grains": GRAINS[i % groups],
            "workdir": "/var/cache/expressware",
        }
    return facts


class Clock:
    """Deterministic fake time for the record (the benchmark measures real time separately)."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        self.now += 0.5
        return self.now


class OverBudget(Exception):
    """The save-per-step run hit its time budget (the rest is extrapolated, and said so)."""


def drive(count, directory=None, groups=2, budget=None, keep_record=False):
    """Run one rollout of ``count`` nodes to its end; save after every step when ``directory`` is given.

    ``budget``: stop after that many seconds of real time (only checked at saves) and report how far it got.
    Returns a dict of counts and sizes (the caller times it).
    """
    clock = Clock()
    rollouts = store_lib.RolloutStore(directory) if directory else None
    saves = 0
    save_seconds = 0.0
    started = time.perf_counter()

    facts = make_facts(count, groups)
    record = rollout.new_record(
        "20261127T000000-abcdef",
        "default",
        "5.26.0",
        "salt://expressware/Dolphin_eXpressWare-5.26.0.sh",
        facts,
        OPTIONS,
        clock(),
    )
    record["args"] = {
        "tgt": "*",
        "tgt_type": "glob",
        "version": "5.26.0",
        "sia": "salt://expressware/Dolphin_eXpressWare-5.26.0.sh",
        "cluster": "default",
        "order": None,
        "sort": "name",
        "options": OPTIONS,
    }

    def say(message):
        rollout.log(record, clock(), message)

    def save(minion=None, group=None):
        """As the runner: a step that changed one node (save_node) or one group (built, staged: save_changes) is
        appended, others rewrite the record."""
        nonlocal saves, save_seconds
        record["updated"] = clock()
        if rollouts is not None:
            before = time.perf_counter()
            if group is not None:
                rollouts.save_changes(record, nodes=tuple(record["groups"][group]["nodes"]), groups=(group,))
            elif minion is None:
                rollouts.save(record)
            else:
                rollouts.save_node(record, minion)
            save_seconds += time.perf_counter() - before
            saves += 1
            if budget is not None and before - started > budget:
                raise OverBudget()

    say(f"rollout {record['id']}: {len(record['order'])} node(s) in order {', '.join(record['order'])}")
    record["driver"] = {"pid": os.getpid(), "host": "bench", "since": clock()}
    try:
        _loop(record, say, save, clock)
    except OverBudget:
        done = sum(1 for n in record["nodes"].values() if n["phase"] == rollout.ACTIVE)
        return {
            "nodes": count,
            "complete": False,
            "nodes_done": done,
            "saves": saves,
            "save_seconds": save_seconds,
            "record_bytes": os.path.getsize(rollouts.path(record["id"])),
        }
    result = rollout.summary(record)
    assert result["status"] == rollout.DONE, result["status"]
    assert result["counts"] == {"active": count}, result["counts"]
    text = json.dumps(store_lib.encode_record(record), separators=(",", ":"))  # what RolloutStore.save writes
    out = {
        "nodes": count,
        "complete": True,
        "nodes_done": count,
        "groups": len(record["groups"]),
        "saves": saves,
        "save_seconds": save_seconds,
        "record_bytes": len(text.encode("utf-8")),
        "record_bytes_compact": len(json.dumps(record, separators=(",", ":")).encode("utf-8")),
        "summary_bytes": len(json.dumps(result).encode("utf-8")),
    }
    if keep_record:
        out["record"] = record
    return out


def expected_saves(count, groups):
    """Saves of a complete run, as the runner does them: 1 at the start, 1 per action (builds,
    updates, finish) and per staging (done while the first node is down), 6 more per node
    (prepared, begun, released, three phases), 1 at the end."""
    return 1 + (groups + count + 1) + groups + 6 * count + 1


def _prepare(record, minion, save, clock):
    """The runner publishes ``minion``'s job ahead of its turn, held at a gate."""
    if minion is not None and not record["nodes"][minion].get("gate"):
        rollout.mark_prepared(record, minion, f"{record['id']}:gate", clock())
        save(minion)


def _loop(record, say, save, clock):
    save()
    while True:
        action = rollout.next_action(record)
        if action is None:
            break
        kind = action[0]
        if kind == "build":
            _prepare(record, rollout.upcoming(record), save, clock)
            say(f"building RPMs for {action[1]} on {record['groups'][action[1]]['builder']} (it stays up)")
            rollout.mark_built(record, action[1], RPMS, clock())
        elif kind == "stage":
            say(f"staging {len(RPMS)} RPM(s) of {action[1]} on {len(record['groups'][action[1]]['nodes']) - 1} node(s)")
            rollout.mark_staged(record, action[1], clock())
        elif kind == "update":
            minion = action[1]
            position = record["order"].index(minion) + 1
            rollout.mark_phase(record, minion, rollout.STOPPING, clock())
            save(minion)
            say(f"{minion} ({position}/{len(record['order'])}): updating")
            rollout.clear_gate(record, minion)  # released
            save(minion)
            while (work := rollout.background_action(record)) is not None:
                say(f"staging {len(RPMS)} RPM(s) of {work[1]} on {len(record['groups'][work[1]]['nodes']) - 1} node(s)")
                rollout.mark_staged(record, work[1], clock())
                save(group=work[1])
            for phase in (rollout.STOPPING, rollout.INSTALLING, rollout.WAITING):
                rollout.mark_phase(record, minion, phase, clock())
                save(minion)  # mark_phase logged it (the driver's say does not again)
                if phase == rollout.INSTALLING:
                    _prepare(record, rollout.upcoming(record, current=minion), save, clock)
            rollout.mark_active(record, minion, "5.26.0", clock())  # logs "active on" (the driver's say does not)
        elif kind == "finish":
            rollout.finish(record, clock())
        else:  # pause/frontend: not part of this plan
            raise RuntimeError(f"unexpected action {action}")
        save(action[1] if kind == "update" else None, group=action[1] if kind in ("build", "stage") else None)
    save()


def timed(count, directory=None, groups=2, budget=None, keep_record=False):
    start = time.perf_counter()
    result = drive(count, directory, groups, budget=budget, keep_record=keep_record)
    result["seconds"] = time.perf_counter() - start
    return result


def profiled(count, directory=None, groups=2, budget=None, top=12):
    """cProfile of one run: the functions with the most own time, and cumulative time of the main parts."""
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    partial = drive(count, directory, groups, budget=budget)
    profile.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profile)
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append(
            {
                "function": f"{Path(filename).name}:{line}({func})" if line else func,
                "calls": ncalls,
                "own_s": tottime,
                "cumulative_s": cumtime,
            }
        )
    rows.sort(key=lambda r: r["own_s"], reverse=True)

    def cumulative(name_part, file_part=""):
        hits = [r for r in rows if name_part in r["function"] and file_part in r["function"]]
        return max((r["cumulative_s"] for r in hits), default=0.0)

    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(top)
    return {
        "complete": partial["complete"],
        "nodes_done": partial["nodes_done"],
        "saves": partial["saves"],
        "wall_s_under_profiler": wall,
        "top_own_time": rows[:top],
        "cumulative": {
            "RolloutStore.save": cumulative("(save)", "expressware_store"),
            "json.dumps": cumulative("(dumps)", "__init__"),
            "os.fsync (in write_json)": cumulative("fsync"),
            "next_action": cumulative("(next_action)"),
            "new_record": cumulative("(new_record)"),
            "summary": cumulative("(summary)"),
        },
        "pstats_text": text.getvalue(),
    }


def encode_costs(record, directory, repeat=5):
    """What one save of the final record costs (``RolloutStore.save``: encoded compact, the C encoder, one write,
    fsync, replace), and what it would cost written differently (a what-if for the report): json.dump with indent
    (Python's pure-Python encoder, one write per token), json.dumps with indent (same encoder, one write),
    json.dumps compact without the store's encoding, and the fsync alone."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "encode.json")

    def best(func):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            func()
            times.append(time.perf_counter() - start)
        return min(times)

    def dump_indent():
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)

    def dumps_indent():
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record, indent=1, sort_keys=True))

    def dumps_compact():
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True, separators=(",", ":")))

    def fsync_only():
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(" ")
            handle.flush()
            os.fsync(handle.fileno())

    costs = {
        "RolloutStore.save (encode_record, json.dumps compact, fsync, replace)": best(
            lambda: store_lib.RolloutStore(directory).save(record)
        ),
        "json.dump(indent=1) to a file": best(dump_indent),
        "json.dumps(indent=1) then one write": best(dumps_indent),
        "json.dumps compact (C encoder) then one write": best(dumps_compact),
        "fsync of a small append": best(fsync_only),
    }
    return costs


def run(count, workdir, groups=2, profile=True, budget=60.0, log=print):
    """No save (exact), a save per step as the runner (within ``budget`` s, else extrapolated), a profile."""
    results = {"nodes": count, "groups": groups, "budget_s": budget, "expected_saves": expected_saves(count, groups)}
    log(f"scale: {count} nodes, no save")
    no_save = timed(count, None, groups, keep_record=True)
    record = no_save.pop("record")
    results["no_save"] = no_save
    directory = str(Path(workdir) / "rollouts")
    log(
        f"scale: {count} nodes, RolloutStore.save after every step ({results['expected_saves']} saves; "
        f"budget {budget:.0f} s, then extrapolated)"
    )
    with_save = timed(count, directory, groups, budget=budget)
    if with_save["complete"]:
        with_save["estimated_total_s"] = with_save["seconds"]
    else:
        # The logic is measured exactly (no_save); the saves are extrapolated at the measured mean per save.
        per_save = with_save["save_seconds"] / with_save["saves"]
        with_save["estimated_total_s"] = no_save["seconds"] + per_save * results["expected_saves"]
    with_save["mean_save_s"] = with_save["save_seconds"] / max(1, with_save["saves"])
    results["save_per_step"] = with_save
    results["encode_costs"] = encode_costs(record, str(Path(workdir) / "encode"))
    if profile:
        shutil.rmtree(directory, ignore_errors=True)
        log(f"scale: {count} nodes, save per step, under cProfile (budget {budget / 2:.0f} s)")
        results["profile_save"] = profiled(count, directory, groups, budget=budget / 2)
        log(f"scale: {count} nodes, no save, under cProfile")
        results["profile_no_save"] = profiled(count, None, groups)
    shutil.rmtree(directory, ignore_errors=True)
    shutil.rmtree(Path(workdir) / "encode", ignore_errors=True)
    return results


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        out = run(n, tmp, budget=float(sys.argv[2]) if len(sys.argv) > 2 else 20)
    for key in ("no_save", "save_per_step", "encode_costs"):
        print(key, json.dumps(out[key], indent=1))
    print(json.dumps(out["profile_save"]["cumulative"], indent=1))
    print(out["profile_save"]["pstats_text"])
    print(json.dumps(out["profile_no_save"]["cumulative"], indent=1))
