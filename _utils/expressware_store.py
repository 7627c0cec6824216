"""Master-side records of this extension: update leases and rollout records.

Plain files under the master's cache directory. Every change happens under an
exclusive ``fcntl`` lock and is written to a temporary file that replaces the old
one, so a crash leaves the old or the new record, never half of one, and
concurrent master processes (peer calls, reactor threads, salt-run) see one order.
"""

import contextlib
import fcntl
import functools
import json
import os
import re
import tempfile
import time

from salt.exceptions import SaltInvocationError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def check_name(value, what):
    """A safe file-name component (cluster names, rollout ids)."""
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def write_json(path, data):
    """Replace ``path`` atomically with ``data`` as JSON."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
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
    """Rollout records, one JSON file per rollout, plus abort requests."""

    def __init__(self, directory):
        self.directory = directory

    def path(self, rollout_id):
        return os.path.join(self.directory, check_name(rollout_id, "rollout id") + ".json")

    def save(self, record):
        write_json(self.path(record["id"]), record)

    def load(self, rollout_id):
        record = read_json(self.path(rollout_id))
        if record is None:
            raise ValueError(f"no rollout {rollout_id!r} (see salt-run rolling.status)")
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
        return best

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
