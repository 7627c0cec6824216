"""The per-node journal (JSON lines) and helpers to analyse several of them.

Every entry has ``time`` (float, epoch seconds) and ``node`` (the node name).
Command entries have ``command``, ``exit``, ``outcome`` (``ok``/``failed``/
``refused``) and ``end``; transition entries have ``event`` (``created``,
``down``, ``active``, ``reboot``, ``booted``, ``installed``, ``fault``).

Appends take an exclusive ``fcntl.flock`` on the journal file, so concurrent
tools on one node never interleave lines.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path

JOURNAL_REL = Path("var/log/expressware-sim/journal.jsonl")


def journal_path(root) -> Path:
    return Path(root) / JOURNAL_REL


def append_entries(root, entries) -> None:
    """Append entries (dicts) to the node's journal under an exclusive lock."""
    entries = list(entries)
    if not entries:
        return
    path = journal_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(e, sort_keys=False) + "\n" for e in entries)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.write(fd, data.encode("utf-8"))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _settle_quietly(root) -> None:
    """Journal any transition that happened since the node was last observed."""
    from .node import NODE_FILE_REL, Node  # local import: node imports journal

    if not (Path(root) / NODE_FILE_REL).is_file():
        return
    try:
        Node(root).settle()
    except (OSError, ValueError):
        # e.g. a read-only view of a node root: read what is there.
        pass


def read_journal(root, settle: bool = True) -> list[dict]:
    """All entries of one node's journal, sorted by time (stable).

    By default the node is settled first, so that an ``active`` transition
    that has happened but was not yet observed is journaled (with its true time).
    """
    if settle:
        _settle_quietly(root)
    path = journal_path(root)
    entries = []
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        with os.fdopen(os.dup(fd), "r", encoding="utf-8") as fh:
            text = fh.read()
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("time"), (int, float)):
            entries.append(entry)
    entries.sort(key=lambda e: e["time"])
    return entries


def merged_journal(roots, settle: bool = True) -> list[dict]:
    """The journals of several nodes merged and sorted by time."""
    merged = []
    for root in roots:
        merged.extend(read_journal(root, settle=settle))
    merged.sort(key=lambda e: e["time"])
    return merged


def _intervals_from_entries(entries) -> list[tuple[float, float | None]]:
    intervals: list[tuple[float, float | None]] = []
    down_since = None
    for entry in entries:
        event = entry.get("event")
        t = entry["time"]
        if event == "created":
            if not entry.get("active", False) and down_since is None:
                down_since = t
        elif event == "down":
            if down_since is None:
                down_since = t
        elif event == "active":
            if down_since is not None:
                intervals.append((down_since, t))
                down_since = None
    if down_since is not None:
        intervals.append((down_since, None))
    return intervals


def down_intervals(roots, settle: bool = True) -> dict[str, list[tuple[float, float | None]]]:
    """``{node name: [(down_start, active_again_or_None), ...]}`` from the journals.

    ``None`` as the end means the node is still not active.
    """
    result: dict[str, list[tuple[float, float | None]]] = {}
    for root in roots:
        entries = read_journal(root, settle=settle)
        name = None
        for entry in entries:
            if entry.get("node"):
                name = entry["node"]
                break
        if name is None:
            name = Path(root).name
        result.setdefault(name, []).extend(_intervals_from_entries(entries))
    return result


def max_nodes_down(roots, settle: bool = True) -> int:
    """Maximum number of nodes that were not active at the same moment.

    Built from down/active intervals; an unfinished down interval extends to
    ``now``.  Intervals that only touch (one node active at t, the next down at
    t) do not overlap.
    """
    points = []
    for intervals in down_intervals(roots, settle=settle).values():
        for start, end in intervals:
            stop = math.inf if end is None else end
            if stop <= start:
                continue
            points.append((start, 1))
            points.append((stop, -1))
    points.sort(key=lambda p: (p[0], p[1]))  # ends (-1) before starts (+1) at equal times
    current = best = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best
