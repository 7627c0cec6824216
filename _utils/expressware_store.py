"""Master-side records of this extension: update leases and rollout records.

Plain files in one directory, :func:`store_root`: ``<cachedir>/expressware`` by default (one master), or the
master configuration's ``expressware:store``, a directory that two masters (Salt's multi-master) mount from one
file system, so that one rollout per cluster holds whichever master runs it and a minion's lease request means the
same on either. Every change happens under an exclusive ``flock`` and is written to a temporary file that replaces
the old one, so a crash leaves the old or the new record, never half of one, and concurrent processes (peer calls,
reactor threads, ``salt-run``, on one master or both) see one order. A shared directory must therefore honour
``flock`` across hosts (NFSv4 with the Linux client, which maps it to POSIX locks the server keeps; CephFS) and
replace a file by ``rename`` atomically with close-to-open consistency; a file system that keeps locks local to each
host (NFS mounted with ``local_lock=flock`` or ``all``) gives no mutual exclusion between the masters.
"""

import collections.abc
import contextlib
import copy
import fcntl
import importlib.util
import json
import os
import re
import socket
import sys
import tempfile
import time

from salt.exceptions import SaltInvocationError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def check_name(value, what):
    """A safe file-name component (cluster names, rollout ids)."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def write_json(path, data):
    """Replace ``path`` atomically with ``data`` as JSON."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # One compact string, written at once: json.dump(indent=...) writes token by
            # token and made a 2,000-node record cost ~25 ms a save.
            handle.write(json.dumps(data, separators=(",", ":")))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on ``path + '.lock'`` for a read-modify-write."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class LeaseStore:
    """One update lease per cluster; no expiry (a failed node keeps it)."""

    def __init__(self, directory, clock=time.time):
        self.directory = directory
        self.clock = clock

    def _path(self, cluster):
        return os.path.join(self.directory, check_name(cluster, "cluster") + ".json")

    def _view(self, cluster, lease):
        if not lease:
            return {"cluster": cluster, "held": False}
        return dict(lease, cluster=cluster, held=True, age=round(self.clock() - lease["since"], 1))

    def get(self, cluster):
        return self._view(cluster, read_json(self._path(cluster)))

    def all(self):
        if not os.path.isdir(self.directory):
            return {}
        names = sorted(n[:-5] for n in os.listdir(self.directory) if n.endswith(".json") and not n.startswith("."))
        return {name: self.get(name) for name in names if read_json(self._path(name))}

    def acquire(self, cluster, holder, purpose=None):
        path = self._path(cluster)
        with locked(path):
            lease = read_json(path)
            if lease and lease["holder"] != holder:
                return dict(self._view(cluster, lease), granted=False)
            if not lease:
                lease = {"holder": holder, "since": self.clock(), "purpose": purpose}
                write_json(path, lease)
            return dict(self._view(cluster, lease), granted=True)

    def take_over(self, cluster, holder, previous, purpose=None):
        """Give ``holder`` the lease, atomically, if it is free or ``previous`` holds it (a rollback takes the
        lease of the halted rollout it rolls back, and hands it back if its pre-flight refuses). ``taken_from``
        in the answer: ``previous`` when it held the lease."""
        path = self._path(cluster)
        with locked(path):
            lease = read_json(path)
            if lease and lease["holder"] not in (previous, holder):
                return dict(self._view(cluster, lease), granted=False)
            taken_from = lease["holder"] if lease and lease["holder"] == previous else None
            if not lease or taken_from:
                lease = {"holder": holder, "since": self.clock(), "purpose": purpose or (lease or {}).get("purpose")}
                write_json(path, lease)
            return dict(self._view(cluster, lease), granted=True, taken_from=taken_from)

    def release(self, cluster, holder=None):
        """Release; with ``holder`` only if that holder has the lease."""
        path = self._path(cluster)
        with locked(path):
            lease = read_json(path)
            if not lease:
                return {"cluster": cluster, "released": False, "comment": "the lease was not held"}
            if holder is not None and lease["holder"] != holder:
                return dict(
                    self._view(cluster, lease),
                    released=False,
                    comment=f"the lease is held by {lease['holder']}, not {holder}",
                )
            os.unlink(path)
            return {
                "cluster": cluster,
                "released": True,
                "holder": lease["holder"],
                "held_for": round(self.clock() - lease["since"], 1),
            }


#: The ``stored`` mark of a record written by :func:`encode_record` (records of earlier releases have none).
STORED_FORMAT = 2

#: Arguments a rollout record keeps at its top level as well (``Driver.start`` copies them there); its ``args`` are
#: stored without them when they are equal, and get them back on load.
_SHARED_ARGS = ("version", "sia", "cluster", "options", "fleet")


#: Fields of a node's entry (``expressware_rollout_plan.new_record``, ``mark_prepared``) stored only when they are
#: not None: most are None most of the time.
_NULLABLE_NODE_FIELDS = ("after", "started", "finished", "error", "note", "gate")


def _encode_node(entry):
    return {k: v for k, v in entry.items() if v is not None or k not in _NULLABLE_NODE_FIELDS}


def _decode_node(entry):
    for key in _NULLABLE_NODE_FIELDS:
        entry.setdefault(key, None)
    return entry


def _encode_log(entries, base):
    """Log entries as stored: ``[seconds since base (ms), message]`` instead of ``{"time": ..., "message": ...}``
    (a cluster's record is mostly its log: half its size went to the keys and the epoch's digits)."""
    if not isinstance(base, (int, float)):
        return entries
    return [
        [round(entry["time"] - base, 3), entry["message"]]
        if isinstance(entry, dict) and isinstance(entry.get("time"), (int, float))
        else entry
        for entry in entries
    ]


def _decode_log(entries, base):
    """:func:`_encode_log` undone (entries of records written before it are dicts already: kept)."""
    return [
        {"time": round(base + entry[0], 3), "message": entry[1]} if isinstance(entry, list) else entry
        for entry in entries
    ]


def encode_record(record):
    """The rollout ``record`` as :class:`RolloutStore` writes it (a shallow copy; the record is not changed): its log
    compact (:func:`_encode_log`, relative to ``created``), its nodes without their empty fields, its ``args``
    without what the top level says already."""
    stored = dict(record, log=_encode_log(record.get("log") or [], record.get("created")), stored=STORED_FORMAT)
    if isinstance(record.get("nodes"), dict):
        stored["nodes"] = {minion: _encode_node(entry) for minion, entry in record["nodes"].items()}
    args = record.get("args")
    if isinstance(args, dict):
        stored["args"] = {k: v for k, v in args.items() if not (k in _SHARED_ARGS and k in record and record[k] == v)}
    return stored


def decode_record(stored):
    """:func:`encode_record` undone, in place; a record written before it passes unchanged."""
    if stored.pop("stored", None) != STORED_FORMAT:
        return stored  # an earlier release's: written as the driver had it
    stored["log"] = _decode_log(stored.get("log") or [], stored.get("created") or 0)
    for entry in (stored.get("nodes") or {}).values():
        _decode_node(entry)
    args = stored.get("args")
    if isinstance(args, dict):
        for key in _SHARED_ARGS:
            if key not in args and key in stored:
                args[key] = copy.deepcopy(stored[key])
    return stored


def _inode(path):
    """Which file ``path`` is now (:func:`write_json` makes a new one each time); None when there is none."""
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


class DriverBusy(RuntimeError):
    """Another process drives this rollout (holds its driver lock)."""


class RolloutStore:
    """Rollout records: a JSON snapshot per rollout, a journal of node changes, abort requests.

    A step that changes one node (the common case: a phase, a node done or failed)
    appends one line to ``<id>.nodes`` (:meth:`save_node`) instead of rewriting the
    whole record, so the cost of a step does not grow with the cluster; every
    ``COMPACT_EVERY`` lines, and on :meth:`save`, the snapshot is rewritten and the
    journal emptied. The files are compact (:func:`encode_record`: a 4-node cluster's
    record is about 3.8 kB where it was 4.9); :meth:`load` gives the record as the driver
    had it (:func:`decode_record`; log times to the millisecond) and reads records of
    earlier releases as they are. :meth:`load` replays the journal over the snapshot. Replaying a
    line twice changes nothing, and a torn last line (a crash while appending) is
    ignored, so a crash at any moment leaves a loadable record.

    The store of a driver (``driver``: its identity, :func:`driver_rollout_store`) holds the driver lock
    ``<id>.driver`` (:func:`hold_driver_lock`) from the first save of a rollout it drives until :meth:`close`:
    :func:`driver_alive` asks that lock, from this master or the other.
    """

    COMPACT_EVERY = 500

    def __init__(self, directory, driver=None):
        self.directory = directory
        self._appended = {}
        # Per rollout: the last snapshot written, as JSON without ``updated`` (a save that would write the same
        # again is left out: an fsync less); the journal's file, open for appending.
        self._written = {}
        self._journals = {}
        self._logged = {}  # the last log entry written, per rollout
        # A driver's store (``driver``: its identity) holds the driver lock of each rollout it saves as its driver
        # (rollout id: open file) until :meth:`close` or the process ends: how the other master tells it runs.
        self.driver = driver
        self._driving = {}

    def _drive(self, record):
        """Hold ``<id>.driver`` when ``record`` names this store's driver as its own (:func:`hold_driver_lock`)."""
        if self.driver is None or record["id"] in self._driving:
            return
        entry = record.get("driver") or {}
        if any(entry.get(key) != value for key, value in self.driver.items()):
            return
        self._driving[record["id"]] = hold_driver_lock(self.directory, record["id"])

    def close(self):
        """Let go of the driver locks this store holds (the driver is done), and of its journals' files."""
        for fd in self._driving.values():
            os.close(fd)
        self._driving.clear()
        for handle in self._journals.values():
            handle.close()
        self._journals.clear()

    def path(self, rollout_id):
        return os.path.join(self.directory, check_name(rollout_id, "rollout id") + ".json")

    def _journal(self, rollout_id):
        return self.path(rollout_id)[: -len(".json")] + ".nodes"

    def save(self, record):
        self._drive(record)
        stored = encode_record(record)
        path = self.path(record["id"])
        unchanged = json.dumps(dict(stored, updated=None), separators=(",", ":"))
        if self._appended.get(record["id"]) == 0 and self._written.get(record["id"]) == (unchanged, _inode(path)):
            return  # the file says this already (the driver's last step saved it; only ``updated`` moved)
        write_json(path, stored)
        self._written[record["id"]] = (unchanged, _inode(path))
        self._logged[record["id"]] = record["log"][-1] if record.get("log") else None
        journal = self._journals.pop(record["id"], None)
        if journal is not None:
            journal.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._journal(record["id"]))
        self._appended[record["id"]] = 0

    def save_node(self, record, minion):
        """Record the change of ``minion`` (and the rollout's status) durably, in O(1)."""
        self.save_changes(record, nodes=(minion,))

    def save_changes(self, record, nodes=(), groups=()):
        """Record the change of ``nodes`` and ``groups`` (a group built or staged: its entry and its nodes'), and
        the rollout's status and new log entries, as one line of the journal: the cost does not grow with the
        cluster."""
        count = self._appended.get(record["id"])
        if count is None or count >= self.COMPACT_EVERY:
            self.save(record)
            return
        line = {
            "nodes": {minion: _encode_node(record["nodes"][minion]) for minion in nodes},
            "groups": {key: record["groups"][key] for key in groups},
            "status": record["status"],
            "reason": record["reason"],
            "updated": record["updated"],
            "log": _encode_log(self._new_entries(record), record.get("created")),
        }
        # Written through to the OS at once (a master or salt-run that dies loses
        # nothing); not fsync'ed per step: after a power loss the last steps of
        # the node in flight may be missing, and resume applies its state again,
        # which is idempotent (a build or staging missing is done again). Snapshots
        # are fsync'ed.
        handle = self._journals.get(record["id"])
        if handle is None or os.fstat(handle.fileno()).st_nlink == 0:  # first line, or another store compacted it
            if handle is not None:
                handle.close()
            handle = self._journals[record["id"]] = open(  # pylint: disable=consider-using-with
                self._journal(record["id"]), "a", encoding="utf-8"
            )
        handle.write(json.dumps(line, separators=(",", ":")) + "\n")
        handle.flush()
        self._appended[record["id"]] = count + 1

    def _new_entries(self, record):
        """The log entries since this store last wrote the record (at most 50; at least the last one)."""
        log = record["log"]
        last = self._logged.get(record["id"])
        new = []
        for entry in reversed(log):
            if entry is last or len(new) == 50:
                break
            new.append(entry)
        self._logged[record["id"]] = log[-1] if log else None
        return new[::-1] or log[-1:]

    def load(self, rollout_id):
        record = read_json(self.path(rollout_id))
        if record is None:
            raise ValueError(f"no rollout {rollout_id!r} (see salt-run rolling.status)")
        decode_record(record)
        try:
            with open(self._journal(rollout_id), encoding="utf-8") as handle:
                lines = handle.read().split("\n")
        except FileNotFoundError:
            lines = []
        for text in lines:
            try:
                change = json.loads(text)
            except ValueError:
                continue  # empty, or torn by a crash while it was appended
            if "node" in change:  # a line of an earlier release: one node
                record["nodes"][change["node"]] = _decode_node(change["entry"])
            for minion, entry in (change.get("nodes") or {}).items():
                record["nodes"][minion] = _decode_node(entry)
            record.get("groups", {}).update(change.get("groups") or {})
            record.update(status=change["status"], reason=change["reason"], updated=change["updated"])
            logged = _decode_log(change["log"], record.get("created") or 0)
            if logged and logged[-1] not in record["log"][-1:]:
                record["log"].extend(logged)
        return record

    def ids(self):
        if not os.path.isdir(self.directory):
            return []
        return sorted(n[:-5] for n in os.listdir(self.directory) if n.endswith(".json") and not n.startswith("."))

    def records(self, cluster=None):
        """Every rollout on record (of ``cluster``), as loaded; an unreadable one is left out."""
        found = []
        for rollout_id in self.ids():
            try:
                record = self.load(rollout_id)
            except ValueError:
                continue  # removed meanwhile
            if cluster is None or record.get("cluster") == cluster:
                found.append(record)
        return found

    def find(self, rollout=None, cluster=None, required=True, skip=()):
        """The rollout named, else the latest (of ``cluster``) whose status is not in ``skip``; ValueError for a
        bad name, or when ``required`` and there is none."""
        if rollout is not None:
            return self.load(rollout)
        if cluster is not None:
            check_name(cluster, "cluster")
        record = self.latest(cluster, skip=skip)
        if record is None and required:
            raise ValueError("no rollout recorded" + (f" for cluster {cluster}" if cluster else ""))
        return record

    def latest(self, cluster=None, skip=()):
        """The most recently created rollout (of ``cluster``; none whose status is in ``skip``), or None."""
        best = None
        for rollout_id in self.ids():
            record = read_json(self.path(rollout_id))
            if record and (cluster is None or record["cluster"] == cluster) and record.get("status") not in skip:
                if best is None or record["created"] > best["created"]:
                    best = record
        return self.load(best["id"]) if best else None

    def _abort_path(self, rollout_id):
        return self.path(rollout_id)[: -len(".json")] + ".abort"

    def request_abort(self, rollout_id):
        with open(self._abort_path(rollout_id), "w", encoding="utf-8") as handle:
            handle.write(str(time.time()))

    def abort_requested(self, rollout_id):
        return os.path.exists(self._abort_path(rollout_id))

    def clear_abort(self, rollout_id):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._abort_path(rollout_id))


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


#: The runners' exit-status decorator lives in ``expressware_args``; kept here under its old name for the
#: ``expressware_lease`` runner (which loads it from the store).
refusing = _sibling("expressware_args").refusing


def store_root(opts):
    """The directory of the leases and rollout records of the master whose options are ``opts``: the master
    configuration's ``expressware:store`` (a directory both masters of a multi-master pair mount; it must exist,
    so that a shared file system that is not mounted is noticed, not replaced by the local disk), else
    ``<cachedir>/expressware``. The one place that says where they are."""
    config = opts.get("expressware") or {}
    shared = config.get("store") if isinstance(config, collections.abc.Mapping) else None
    if shared is None:
        return os.path.join(opts["cachedir"], "expressware")
    if not isinstance(shared, str) or not os.path.isabs(shared):
        raise SaltInvocationError(
            f"the master configuration's expressware:store must be an absolute path (a directory every master "
            f"of the cluster mounts), not {shared!r}"
        )
    if not os.path.isdir(shared):
        raise SaltInvocationError(
            f"the master configuration's expressware:store {shared} is not a directory (is the shared file system "
            "mounted on this master?)"
        )
    return os.path.normpath(shared)


def rollout_store(opts):
    """The rollout records of the master whose options are ``opts`` (:func:`store_root`)."""
    return RolloutStore(os.path.join(store_root(opts), "rollouts"))


def driver_rollout_store(opts):
    """The rollout records as a driver in this process writes them: its identity (:func:`driver_identity`) goes in
    each record it drives, and it holds their driver locks."""
    rollouts = rollout_store(opts)
    rollouts.driver = driver_identity(opts, rollouts.directory)
    return rollouts


def driver_identity(opts, directory):
    """Who drives records of ``directory`` from this process: its pid and host, the master's id (which of two
    masters), and ``directory``, where it holds each record's driver lock (:func:`hold_driver_lock`)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "master": opts.get("id"), "store": directory}


def hold_driver_lock(directory, record_id):
    """Take the exclusive lock ``<directory>/<record_id>.driver`` that says a driver runs (:func:`driver_alive`), for
    as long as the returned file descriptor is open (``os.close`` it when done; the process's end frees it too).
    :class:`DriverBusy` when another process holds it (two drivers of one record: a resume on each master at once)."""
    os.makedirs(directory, exist_ok=True)
    fd = os.open(
        os.path.join(directory, check_name(record_id, "record id") + ".driver"), os.O_WRONLY | os.O_CREAT, 0o644
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DriverBusy(
            f"{record_id} is driven by another process (its driver lock is held): this one stops without writing "
            "its record"
        ) from None
    return fd


def reports_path(cachedir, rollout_id, fmt="html"):
    """Where ``rolling.report`` writes the picture of rollout ``rollout_id`` by default (on this master: a report is
    not shared)."""
    return os.path.join(cachedir, "expressware", "reports", check_name(rollout_id, "rollout id") + "." + fmt)


def lease_store(opts):
    """The cluster update leases of the master whose options are ``opts`` (:func:`store_root`)."""
    return LeaseStore(os.path.join(store_root(opts), "leases"))


def driver_alive(record):
    """Is the process driving ``record`` (``salt-run rolling.update``/``resume``, on this master or the other)
    still running?

    A driver that names its store holds the exclusive lock ``<store>/<id>.driver`` as long as it runs
    (:func:`hold_driver_lock`; a rollout's from its first save): it is alive while that lock is held, whichever host
    it runs on; the operating system (or the NFS server, once the dead host's lease expires: 90 s by default) frees
    the lock of a process that died. An older record (no store named) or a lock file not found: the pid on this
    host, as before."""
    driver = record.get("driver") or {}
    if driver.get("store") and record.get("id"):
        if driver.get("pid") == os.getpid() and driver.get("host") == socket.gethostname():
            return True  # this process (a probe would take, and on NFS lose, its own lock)
        held = _lock_held(os.path.join(driver["store"], check_name(record["id"], "rollout id") + ".driver"))
        if held is not None:
            return held
    if driver.get("host") != socket.gethostname() or not driver.get("pid"):
        return False
    try:
        os.kill(driver["pid"], 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{driver['pid']}/cmdline", "rb") as handle:
            return b"salt" in handle.read()
    except OSError:
        return True


def _lock_held(path):
    """Does another open file hold an exclusive ``flock`` on ``path``? None when there is no such file."""
    try:
        fd = os.open(path, os.O_WRONLY)  # write access: NFS maps flock to a POSIX write lock
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # frees the probe's own lock, if it got one
    return False
