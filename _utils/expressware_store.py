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


class DriverBusy(RuntimeError):
    """Another process drives this rollout (holds its driver lock)."""


class RolloutStore:
    """Rollout records: a JSON snapshot per rollout, a journal of node changes, abort requests.

    A step that changes one node (the common case: a phase, a node done or failed)
    appends one line to ``<id>.nodes`` (:meth:`save_node`) instead of rewriting the
    whole record, so the cost of a step does not grow with the cluster; every
    ``COMPACT_EVERY`` lines, and on :meth:`save`, the snapshot is rewritten and the
    journal emptied. :meth:`load` replays the journal over the snapshot. Replaying a
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
        """Let go of the driver locks this store holds (the driver is done)."""
        for fd in self._driving.values():
            os.close(fd)
        self._driving.clear()

    def path(self, rollout_id):
        return os.path.join(self.directory, check_name(rollout_id, "rollout id") + ".json")

    def _journal(self, rollout_id):
        return self.path(rollout_id)[: -len(".json")] + ".nodes"

    def save(self, record):
        self._drive(record)
        write_json(self.path(record["id"]), record)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._journal(record["id"]))
        self._appended[record["id"]] = 0

    def save_node(self, record, minion):
        """Record the change of ``minion`` (and the rollout's status) durably, in O(1)."""
        count = self._appended.get(record["id"])
        if count is None or count >= self.COMPACT_EVERY:
            self.save(record)
            return
        line = {
            "node": minion,
            "entry": record["nodes"][minion],
            "status": record["status"],
            "reason": record["reason"],
            "updated": record["updated"],
            "log": record["log"][-1:],
        }
        # Written through to the OS at once (a master or salt-run that dies loses
        # nothing); not fsync'ed per step: after a power loss the last steps of
        # the node in flight may be missing, and resume applies its state again,
        # which is idempotent. Snapshots are fsync'ed.
        with open(self._journal(record["id"]), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._appended[record["id"]] = count + 1

    def load(self, rollout_id):
        record = read_json(self.path(rollout_id))
        if record is None:
            raise ValueError(f"no rollout {rollout_id!r} (see salt-run rolling.status)")
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
            record["nodes"][change["node"]] = change["entry"]
            record.update(status=change["status"], reason=change["reason"], updated=change["updated"])
            if change["log"] and change["log"][-1] not in record["log"][-1:]:
                record["log"].extend(change["log"])
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
