"""Where the leases and rollout records live (``expressware:store``: one directory two masters share), and how a
rollout's driver is told alive from either master (its driver lock). The same on real daemons, two masters:
``tests/integration_multimaster``."""

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest
from salt.exceptions import SaltInvocationError

from tests.shared_code import REPO, load

store = load("expressware_store")
rollout = load("expressware_rollout")


def _opts(tmp_path, master, shared=None):
    """A master's options: its own cache, and (``shared``) the store both masters mount."""
    opts = {"id": master, "cachedir": str(tmp_path / master / "cache")}
    if shared is not None:
        opts["expressware"] = {"store": str(shared)}
    return opts


def _record(rollout_id, driver):
    record = rollout.preflight_record(rollout_id, "default", "5.26.0", "salt://x.sh", {}, 1000.0)
    record["driver"] = dict(driver, since=1000.0)
    return record


def test_the_master_cache_is_the_default_store(tmp_path):
    opts = _opts(tmp_path, "master1")
    assert store.store_root(opts) == os.path.join(opts["cachedir"], "expressware")
    assert store.rollout_store(opts).directory == os.path.join(opts["cachedir"], "expressware", "rollouts")
    assert store.lease_store(opts).directory == os.path.join(opts["cachedir"], "expressware", "leases")
    # An expressware section without a store (a maintenance window, say) keeps the default.
    assert store.store_root(dict(opts, expressware={"window_tz": "UTC"})) == store.store_root(opts)


def test_a_configured_store_is_used_by_both_masters(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    one, two = _opts(tmp_path, "master1", shared), _opts(tmp_path, "master2", shared)
    assert store.store_root(one) == store.store_root(two) == str(shared)
    assert store.lease_store(one).acquire("db1", "rolling:r1")["granted"] is True
    taken = store.lease_store(two).acquire("db1", "rolling:r2")
    assert taken["granted"] is False and taken["holder"] == "rolling:r1"
    store.rollout_store(one).save(_record("r1", {"pid": 1, "host": "m1"}))
    assert store.rollout_store(two).load("r1")["id"] == "r1"
    assert not os.path.exists(os.path.join(one["cachedir"], "expressware"))  # nothing written to a master's own cache


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("relative/dir", "must be an absolute path"),
        (["/a", "/b"], "must be an absolute path"),
        ("", "must be an absolute path"),
        ("/no/such/shared/dir", "is not a directory (is the shared file system mounted on this master?)"),
    ],
)
def test_a_bad_store_is_refused_naming_the_option(tmp_path, given, said):
    opts = dict(_opts(tmp_path, "master1"), expressware={"store": given})
    for open_store in (store.store_root, store.rollout_store, store.lease_store, store.driver_rollout_store):
        with pytest.raises(SaltInvocationError) as exc:
            open_store(opts)
        assert "expressware:store" in str(exc.value) and said in str(exc.value)
    assert not os.path.exists(opts["cachedir"])  # nothing written anywhere


def test_a_driver_records_who_drives_and_holds_the_driver_lock_until_it_closes(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    mine = store.driver_rollout_store(_opts(tmp_path, "master1", shared))
    assert mine.driver == {
        "pid": os.getpid(),
        "host": store.socket.gethostname(),
        "master": "master1",
        "store": str(shared / "rollouts"),
    }
    record = _record("r1", mine.driver)
    assert store.driver_alive(record) is True  # this very process
    mine.save(record)
    # As the other master sees it: another pid on another host, the same lock.
    seen = _record("r1", dict(mine.driver, pid=4_000_000, host="master1.example"))
    assert store.driver_alive(seen) is True
    # A second driver of the same rollout (master2 resuming it meanwhile) is refused before it writes.
    other = store.driver_rollout_store(_opts(tmp_path, "master2", shared))
    with pytest.raises(store.DriverBusy, match="r1 is driven by another process"):
        other.save(_record("r1", other.driver))
    assert store.rollout_store(_opts(tmp_path, "master2", shared)).load("r1")["driver"]["master"] == "master1"
    mine.close()
    assert store.driver_alive(seen) is False
    other.save(_record("r1", other.driver))  # the driver gone, the other master takes over (rolling.resume)
    assert store.driver_alive(dict(seen, driver=dict(seen["driver"], master="master2"))) is True
    other.close()


def test_a_driver_on_another_host_is_alive_while_its_process_holds_the_lock(tmp_path):
    """The driver is another process (master1's salt-run) that this one cannot see by pid: its host is not this
    one. Alive while it runs; dead as soon as it is killed, with no clock and no timeout."""
    shared = tmp_path / "shared"
    shared.mkdir()
    opts = {"id": "master1", "cachedir": "/nonexistent", "expressware": {"store": str(shared)}}
    child = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.shared_code import load
        store = load("expressware_store")
        rollouts = store.driver_rollout_store({opts!r})
        rollouts.driver["host"] = "master1.example"
        record = load("expressware_rollout").preflight_record("r1", "default", "5.26.0", "x", {{}}, 1000.0)
        record["driver"] = dict(rollouts.driver, since=1000.0)
        rollouts.save(record)
        print("driving", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(REPO)
    )
    try:
        assert proc.stdout.readline().strip() == "driving"
        record = store.rollout_store(_opts(tmp_path, "master2", shared)).load("r1")
        assert record["driver"]["host"] == "master1.example" and record["driver"]["pid"] == proc.pid
        assert store.driver_alive(record) is True
        proc.kill()
        proc.wait(timeout=30)
        assert store.driver_alive(record) is False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def test_a_record_without_a_driver_lock_falls_back_to_the_pid_on_this_host(tmp_path):
    """Records written before the driver lock (no store named), or a lock file not found: the pid, on this host
    only, as before."""
    here = store.socket.gethostname()
    # A process whose command line says salt, as salt-run's does.
    salt_run = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()", "salt-run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert salt_run.stdout.readline().strip() == "up"  # its command line is its own now
        assert store.driver_alive(_record("r1", {"pid": salt_run.pid, "host": here})) is True
        assert store.driver_alive(_record("r1", {"pid": salt_run.pid, "host": "elsewhere"})) is False
        lost = {"pid": salt_run.pid, "host": here, "master": "m", "store": str(tmp_path / "gone")}
        assert store.driver_alive(_record("r1", lost)) is True
    finally:
        salt_run.kill()
        salt_run.wait(timeout=30)
    assert store.driver_alive(_record("r1", {"pid": salt_run.pid, "host": here})) is False


def test_any_record_with_a_driver_lock_is_told_alive_the_same_way(tmp_path):
    """A fleet's record (``fleets/``) beside the rollouts' uses the same identity and lock."""
    fleets = str(tmp_path / "shared" / "fleets")
    record = {"id": "fleet-20261201T101500-1a2b3c", "driver": store.driver_identity({"id": "master1"}, fleets)}
    assert record["driver"]["store"] == fleets and record["driver"]["master"] == "master1"
    seen = dict(record, driver=dict(record["driver"], pid=4_000_000, host="master1.example"))
    assert store.driver_alive(seen) is False  # no lock file: the pid fallback, another host
    held = store.hold_driver_lock(fleets, record["id"])
    try:
        assert store.driver_alive(seen) is True
        with pytest.raises(store.DriverBusy, match="fleet-20261201T101500-1a2b3c is driven by another process"):
            store.hold_driver_lock(fleets, record["id"])
    finally:
        os.close(held)
    assert store.driver_alive(seen) is False
    with pytest.raises(ValueError, match="record id"):
        store.hold_driver_lock(fleets, "../escape")


def _master_driver(monkeypatch, opts):
    """``Master(opts).driver`` with no Salt: what it gives the Driver, as ``(rollouts, keyword arguments)``."""
    runner_lib = load("expressware_runner")
    monkeypatch.setattr(runner_lib.saltio, "SaltAdapter", lambda opts, default_timeout: contextlib.nullcontext())
    monkeypatch.setattr(runner_lib.staging_lib, "Staging", lambda salt, cachedir: None)
    monkeypatch.setattr(runner_lib.driver_lib, "Driver", lambda salt, rollouts, leases, *args, **kw: (rollouts, kw))
    return runner_lib.Master(opts).driver({"timeout": 5}, progress=False)


def test_the_runner_s_driver_records_this_master_and_lets_go_of_its_locks(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    opts = _opts(tmp_path, "master2", shared)
    with _master_driver(monkeypatch, opts) as (rollouts, given):
        assert given["identity"] is rollouts.driver and rollouts.driver["master"] == "master2"
        assert rollouts.directory == str(shared / "rollouts")
        record = _record("r1", rollouts.driver)
        rollouts.save(record)
        seen = dict(record, driver=dict(record["driver"], pid=4_000_000))
        assert store.driver_alive(seen) is True
    assert store.driver_alive(seen) is False  # the driver is done: its lock is free


def test_a_second_driver_of_one_rollout_is_refused_as_the_runner_refuses(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    held = store.hold_driver_lock(str(shared / "rollouts"), "r1")  # master 1's driver of r1
    try:
        with pytest.raises(SaltInvocationError, match="r1 is driven by another process"):
            with _master_driver(monkeypatch, _opts(tmp_path, "master2", shared)) as (rollouts, _):
                rollouts.save(_record("r1", rollouts.driver))
    finally:
        os.close(held)
