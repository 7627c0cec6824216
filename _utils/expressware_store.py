"""Master-side records of this extension: update leases, rollout records and gates.

Plain files under the master's cache directory. Every change happens under an
exclusive ``fcntl`` lock and is written to a temporary file that replaces the old
one, so a crash leaves the old or the new record, never half of one, and
concurrent master processes (peer calls, reactor threads, salt-run) see one order.
"""

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import socket
import tempfile
import time

from salt.exceptions import SaltInvocationError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def check_name(value, what):
    """A safe file-name component (cluster names, rollout ids)."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def write_json(path, data, durable=True):
    """Replace ``path`` atomically with ``data`` as JSON (``durable``: on disk before it replaces)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # One compact string, written at once: json.dump(indent=...) writes token by
            # token and made a 2,000-node record cost ~25 ms a save.
            handle.write(json.dumps(data, separators=(",", ":")))
            handle.flush()
            if durable:
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

    def release(self, cluster, holder=None):
        """Release; with ``holder`` only if that holder has the lease."""
        path = self._path(cluster)
        with locked(path):
            lease = read_json(path)
            if not lease:
                return {"cluster": cluster, "released": False, "comment": "the lease was not held"}
            if holder is not None and lease["holder"] != holder:
                return dict(self._view(cluster, lease), released=False,
                            comment=f"the lease is held by {lease['holder']}, not {holder}")
            os.unlink(path)
            return {"cluster": cluster, "released": True, "holder": lease["holder"],
                    "held_for": round(self.clock() - lease["since"], 1)}


class RolloutStore:
    """Rollout records: a JSON snapshot per rollout, a journal of node changes, abort requests.

    A step that changes one node (the common case: a phase, a node done or failed)
    appends one line to ``<id>.nodes`` (:meth:`save_node`) instead of rewriting the
    whole record, so the cost of a step does not grow with the cluster; every
    ``COMPACT_EVERY`` lines, and on :meth:`save`, the snapshot is rewritten and the
    journal emptied. :meth:`load` replays the journal over the snapshot. Replaying a
    line twice changes nothing, and a torn last line (a crash while appending) is
    ignored, so a crash at any moment leaves a loadable record.
    """

    COMPACT_EVERY = 500

    def __init__(self, directory):
        self.directory = directory
        self._appended = {}

    def path(self, rollout_id):
        return os.path.join(self.directory, check_name(rollout_id, "rollout id") + ".json")

    def _journal(self, rollout_id):
        return self.path(rollout_id)[: -len(".json")] + ".nodes"

    def save(self, record):
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
        line = {"node": minion, "entry": record["nodes"][minion], "status": record["status"],
                "reason": record["reason"], "updated": record["updated"], "log": record["log"][-1:]}
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

    def latest(self, cluster=None):
        """The most recently created rollout (of ``cluster``), or None."""
        best = None
        for rollout_id in self.ids():
            record = read_json(self.path(rollout_id))
            if record and (cluster is None or record["cluster"] == cluster):
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


def driver_alive(driver):
    """Is the ``salt-run`` process described by ``driver`` (``{"pid", "host"}``, as the
    rolling runner records itself) still running on this host?"""
    driver = driver or {}
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


# Commands a worker pool may share with minion_runner (peer calls) for a question to wait
# there: a waiting MWorker still gets its turn of its pool's requests, which queue behind it.
PEER_COMMANDS = {"minion_runner", "minion_pub", "minion_publish"}


def long_poll_allowed(opts):
    """May a question (``expressware_lease.wait_gate``) wait in a master worker? Only when the
    master routes ``minion_runner`` to a worker pool of peer calls alone (Salt 3008
    ``worker_pools``): in the catchall pool, the job returns, file requests and events that
    Salt hands that worker in turn would wait behind it."""
    if not opts.get("worker_pools_enabled", True):
        return False
    for pool in (opts.get("worker_pools") or {}).values():
        commands = set(pool.get("commands") or []) if isinstance(pool, dict) else set()
        if "minion_runner" in commands:
            return commands <= PEER_COMMANDS
    return False


class GateStore:
    """The gates of prepared jobs: what the rolling runner decided for each.

    A prepared job (the ``expressware.installed`` state with ``gate``) asks the
    master for its gate's decision (``expressware_lease.wait_gate``): ``wait``,
    ``go`` or ``cancel``. The first decision is final. It is kept in a file, so a
    job that asks late (after a master restart, or a cancel sent before it reached
    its gate) still gets it.  Not fsync'ed (two writes are on each handover's critical
    path): a gate matters only while its runner lives, and a power loss ends both. Files older than ``KEEP`` seconds are removed when a gate opens.
    """

    KEEP = 7 * 86400
    DECISIONS = ("wait", "go", "cancel")

    def __init__(self, directory, clock=time.time):
        self.directory = directory
        self.clock = clock

    def _path(self, gate):
        if not isinstance(gate, str) or not gate:
            raise ValueError(f"gate must be a non-empty string, not {gate!r}")
        # Gates hold ':'; the file name is a digest, the gate itself is inside.
        return os.path.join(self.directory, hashlib.sha256(gate.encode()).hexdigest()[:32] + ".json")

    def open(self, gate, minion, driver):
        """A new gate for ``minion``'s prepared job, decision ``wait``."""
        self.prune()
        path = self._path(gate)
        with locked(path):
            record = {"gate": gate, "minion": minion, "decision": "wait", "reason": None,
                      "driver": driver, "opened": self.clock(), "decided": None, "taken": None}
            write_json(path, record, durable=False)
        return record

    def get(self, gate):
        return read_json(self._path(gate))

    def decide(self, gate, decision, reason=None):
        """Set the decision of an open gate unless it has one already; the gate as it now is
        (None: no such gate)."""
        if decision not in self.DECISIONS[1:]:
            raise ValueError(f"a gate's decision is go or cancel, not {decision!r}")
        path = self._path(gate)
        with locked(path):
            record = read_json(path)
            if record is not None and record["decision"] == "wait":
                record.update(decision=decision, reason=reason, decided=self.clock())
                write_json(path, record, durable=False)
        return record

    def claim(self, gate):
        """The gate for its job to act on: once decided, the first call marks it taken (the
        master answered; whether the job then started, its ``expressware/gate/started``
        event tells)."""
        path = self._path(gate)
        with locked(path):
            record = read_json(path)
            if record is not None and record["decision"] != "wait" and record["taken"] is None:
                record["taken"] = self.clock()
                write_json(path, record, durable=False)
        return record

    def prune(self):
        if not os.path.isdir(self.directory):
            return
        limit = time.time() - self.KEEP  # against file times, which are the wall clock's
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            with contextlib.suppress(OSError):
                if os.path.getmtime(path) < limit:
                    os.unlink(path)


def refusing(func):
    """Decorator for runner functions: bad input gets a clear refusal and a non-zero exit.

    Salt's runner client prints a raised ``SaltInvocationError`` as usage text and
    ``salt-run`` exits 0 (the exception is also a ``TypeError``); a returned
    ``retcode`` is what sets the exit status.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SaltInvocationError as exc:
            return {"status": "refused", "comment": str(exc), "retcode": 1}

    return wrapper
