"""Fleet figures on real daemons (``bench/run.py``'s ``fleet`` phase): the walk of several clusters side by side
against each cluster's own physical limit and against the one-line walk of the same nodes, and what one cluster in
flight costs the ``salt-run`` process and the master (a Salt adapter per cluster: ``LocalClient`` + event listener).

Pure helpers over the simulator's journals and ``/proc``; the daemons are ``bench/run.py``'s.
"""

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

import analysis


def cluster_figures(journals, clusters, t_start, t_end, records=None):
    """Each cluster's figures (``analysis.analyse_run`` over its own nodes' journals) and the fleet's.

    ``records``: ``{cluster: its rollout's record}`` (the master's cache), to split its handovers and its time
    before the first node as the rolling phase does (``analysis.handover_parts``, ``analysis.startup_parts``).

    ``clusters``: ``{cluster: [node, ...]}``. A cluster's **own physical limit** is ``analysis``'s physical limit of
    its nodes alone: the sum of their in-flight times plus its ``--build-rpm`` runs (a cluster that received the
    fleet's RPMs from another cluster's build has no build of its own). The fleet's ratio is its wall time over the
    slowest cluster's limit: 1.0 when the clusters overlap perfectly, about the number of clusters when they queue.
    """
    per_cluster = {}
    for cluster, nodes in sorted(clusters.items()):
        fig = analysis.analyse_run({n: journals[n] for n in nodes}, t_start, t_end)
        changed = [n for n in fig["nodes"] if n["first_change"] is not None]
        actives = [n["active"] for n in changed if n["active"] is not None]
        per_cluster[cluster] = {
            "nodes": list(nodes),
            "physical_limit_s": fig["physical_limit_s"],
            "builds": fig["builds"],
            "build_s": sum(fig["build_seconds"]),
            "in_flight_s": sum(n["in_flight"] for n in changed if n["in_flight"] is not None),
            "first_change_s": (min(n["first_change"] for n in changed) - t_start) if changed else None,
            "last_active_s": (max(actives) - t_start) if actives else None,
            "nodes_active_after": fig["nodes_active_after"],
            "max_nodes_down": fig["max_nodes_down"],
            "handover": fig["handover"],
            "breakdown": fig.get("breakdown"),
        }
        record = (records or {}).get(cluster)
        if record:
            parts = analysis.handover_parts(fig, record)
            per_cluster[cluster]["handover_parts"] = (
                dict(parts["mean"], gate=(parts["gate"] or {}).get("mean")) if parts else None
            )
            per_cluster[cluster]["startup_parts"] = analysis.startup_parts(fig, record)
    whole = analysis.analyse_run(journals, t_start, t_end)
    # The fleet's builds come before every cluster's first node (the others wait for them): a cluster's limit
    # counting them too, whoever built.
    fleet_builds = sum(end - start for n in whole["nodes"] for kind, start, end in n["builds"] if kind == "build-rpm")
    for figures in per_cluster.values():
        figures["limit_with_fleet_builds_s"] = figures["in_flight_s"] + fleet_builds
    slowest = max(per_cluster, key=lambda c: per_cluster[c]["physical_limit_s"])
    limit = per_cluster[slowest]["physical_limit_s"]
    wall = t_end - t_start
    return {
        "t_start": t_start,
        "t_end": t_end,
        "wall_s": wall,
        "clusters": per_cluster,
        "slowest_cluster": slowest,
        "slowest_limit_s": limit,
        "ratio": wall / limit if limit else None,
        "builds": whole["builds"],
        "max_nodes_down": whole["max_nodes_down"],
        "sum_of_limits_s": sum(c["physical_limit_s"] for c in per_cluster.values()),
        "fleet_builds_s": fleet_builds,
        "ratio_with_fleet_builds": wall / max(c["limit_with_fleet_builds_s"] for c in per_cluster.values())
        if per_cluster
        else None,
        "nodes": whole["nodes"],
    }


# ---------------------------------------------------------------------------
# What a cluster in flight costs: threads, descriptors, memory
# ---------------------------------------------------------------------------


def _status(pid="self"):
    values = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                values[key] = int(value.split()[0])
    return values


def fds(pid="self"):
    """``{kind: count}`` of a process's open descriptors (``socket``, ``pipe``, ``anon_inode``, ``file``)."""
    counts = {"total": 0, "socket": 0, "pipe": 0, "anon_inode": 0, "file": 0}
    base = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        for entry in os.listdir(base):
            try:
                target = os.readlink(f"{base}/{entry}")
            except OSError:
                continue
            counts["total"] += 1
            kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
            counts[kind if kind in counts else "file"] += 1
    return counts


def process_snapshot(pid="self"):
    status = _status(pid)
    return {"threads": status.get("Threads"), "rss_kb": status.get("VmRSS"), "fds": fds(pid)}


def master_processes(conf):
    """``{pid: name}`` of the salt-master started with ``-c conf`` and of every process in its session."""
    sessions, names = set(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        names[int(entry)] = (cmdline.strip(), int(fields[3]))
        if "salt-master" in cmdline and str(conf) in cmdline:
            sessions.add(int(fields[3]))
    return {pid: cmd for pid, (cmd, sid) in names.items() if sid in sessions}


def master_snapshot(conf):
    snap = {}
    for pid, name in master_processes(conf).items():
        snap[pid] = dict(process_snapshot(pid), name=name[:160])
    return snap


def _master_delta(before, during, count):
    """The master's processes whose descriptors changed, and the totals, per cluster."""
    rows, total = [], {"fds": 0, "sockets": 0, "rss_kb": 0}
    for pid, now in during.items():
        then = before.get(pid)
        if then is None:
            rows.append({"pid": pid, "name": now["name"], "new process": True, "fds": now["fds"]["total"]})
            total["fds"] += now["fds"]["total"]
            total["sockets"] += now["fds"]["socket"]
            total["rss_kb"] += now["rss_kb"] or 0
            continue
        d_fds = now["fds"]["total"] - then["fds"]["total"]
        d_sock = now["fds"]["socket"] - then["fds"]["socket"]
        d_rss = (now["rss_kb"] or 0) - (then["rss_kb"] or 0)
        total["fds"] += d_fds
        total["sockets"] += d_sock
        total["rss_kb"] += d_rss
        if d_fds or d_sock:
            rows.append({"pid": pid, "name": now["name"], "fds": d_fds, "sockets": d_sock, "rss_kb": d_rss})
    return {
        "processes": len(during),
        "changed": rows,
        "total": total,
        "per_cluster": {k: v / count for k, v in total.items()},
    }


def adapter_cost(conf, minions, count=50, log=print, settle=3.0):
    """Open ``count`` Salt adapters in ``count`` threads, as ``FleetRun`` does (one per cluster in flight: each
    thread ``with SaltAdapter(opts)``, one ``test.ping`` through it as a driver's first call, then waiting on
    ``get_event``); this process's threads, descriptors and memory, and the master's processes' descriptors and
    memory, before, with them open, and after they are closed. The master's options are read as ``salt-run``
    reads them (``-c conf``)."""
    import salt.config  # pylint: disable=import-outside-toplevel
    import scale  # pylint: disable=import-outside-toplevel

    saltio = scale.load_util("expressware_salt")
    opts = salt.config.master_config(os.path.join(str(conf), "master"))

    def hold(index, opened, stop, errors):
        try:
            with saltio.SaltAdapter(opts, default_timeout=60) as salt_io:
                answer = salt_io.call([minions[index % len(minions)]], "test.ping", timeout=60)
                if not any(answer.values()):
                    errors.append(f"adapter {index}: test.ping unanswered")
                opened.release()
                while not stop.is_set():
                    salt_io.get_event(wait=0.5)
        except Exception as exc:  # pylint: disable=broad-except  # said in the figures
            errors.append(f"adapter {index}: {exc!r}")
            opened.release()

    def open_many(number):
        opened, stop, errors = threading.Semaphore(0), threading.Event(), []
        threads = [
            threading.Thread(target=hold, args=(i, opened, stop, errors), name=f"adapter-{i}", daemon=True)
            for i in range(number)
        ]
        for thread in threads:
            thread.start()
        for _ in threads:
            opened.acquire(timeout=180)
        return threads, stop, errors

    def close(threads, stop):
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    log("fleet: one Salt adapter opened and closed first (imports, one-time set-up)")
    close(*open_many(1)[:2])
    time.sleep(settle)
    before = {
        "process": process_snapshot(),
        "python_threads": threading.active_count(),
        "master": master_snapshot(conf),
    }
    log(f"fleet: {count} Salt adapters in {count} threads, each waiting on the master's events")
    started = time.monotonic()
    threads, stop, errors = open_many(count)
    opened_s = time.monotonic() - started
    time.sleep(settle)
    during = {
        "process": process_snapshot(),
        "python_threads": threading.active_count(),
        "master": master_snapshot(conf),
    }
    close(threads, stop)
    time.sleep(settle)
    after = {"process": process_snapshot(), "python_threads": threading.active_count(), "master": master_snapshot(conf)}

    def per(key, sub=None):
        a = before["process"][key] if sub is None else before["process"][key][sub]
        b = during["process"][key] if sub is None else during["process"][key][sub]
        return {"before": a, "with": b, "per_cluster": (b - a) / count}

    return {
        "adapters": count,
        "opened_s": opened_s,
        "errors": errors,
        "process": {
            "threads (OS)": per("threads"),
            "python threads": {
                "before": before["python_threads"],
                "with": during["python_threads"],
                "per_cluster": (during["python_threads"] - before["python_threads"]) / count,
            },
            "open descriptors": per("fds", "total"),
            "sockets": per("fds", "socket"),
            "pipes": per("fds", "pipe"),
            "anon inodes (epoll, eventfd)": per("fds", "anon_inode"),
            "RSS (kB)": per("rss_kb"),
        },
        "after_close": {
            "threads (OS)": after["process"]["threads"],
            "open descriptors": after["process"]["fds"]["total"],
            "sockets": after["process"]["fds"]["socket"],
            "RSS (kB)": after["process"]["rss_kb"],
        },
        "master": _master_delta(before["master"], during["master"], count),
        "master_after_close": _master_delta(before["master"], after["master"], count)["total"],
    }


def reset_nodes(roots, create, version, kernels, delays, application):
    """Every node made anew on ``version`` (its journal too), its application running: as before the first walk."""
    for name, root in roots.items():
        shutil.rmtree(root)
        node = create(root, name=name, version=version, kernel=kernels[name], **delays)
        node.add_application(application)
