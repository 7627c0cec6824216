"""Helpers and fixtures shared by the tests that run ``salt-run rolling.*``."""

import json
import os
import subprocess
import time
import warnings

import pytest

from tests.conftest import NEW, changing_commands
from tests.daemons import stopped
from tests.integration.conftest import NODE_IDS, sia_url
from tests.shared_code import load

_store = load("expressware_store")
_rollout = load("expressware_rollout")


@pytest.fixture(autouse=True)
def data_nodes(nodes, reset_nodes):
    """Every node runs an NDB data node over SuperSockets, which an update must stop first."""
    for node in nodes.values():
        node.add_application("ndbmtd")


@pytest.fixture(autouse=True)
def no_leftover_lease(master, salt_run_cli):
    yield
    # Released through the runner when a test left it held (a halted rollout keeps it). Most tests leave none, and a
    # salt-run after every test cost the suite minutes of CPU.
    if os.path.exists(os.path.join(master.config["cachedir"], "expressware", "leases", "default.json")):
        salt_run_cli.run("expressware_lease.release", "cluster=default")


def recorded_status(master):
    """The latest rollout as ``rolling.status`` shows it (summary, health, evidence), read from the master's records.
    For a test that polls while a rollout runs: a salt-run every tenth of a second took CPU from the rollout under
    test. What a test asserts goes through the real ``rolling.status``."""
    rollouts = _store.RolloutStore(os.path.join(master.config["cachedir"], "expressware", "rollouts"))
    record = rollouts.latest(skip=("refused",))
    return _rollout.status_report(record, None, True) if record else {}


def update_args(**extra):
    """``key=value`` arguments of rolling.update; a string value is passed as typed (YAML), anything else as JSON."""
    args = {"tgt": "*", "version": NEW, "sia": sia_url(NEW), "applications": ["ndbmtd"], "node_timeout": 60}
    args.update(extra)
    return [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in args.items()]


def roots(nodes):
    return [node.root for node in nodes.values()]


def commands(node, word):
    """The node's changing commands that contain ``word`` (``--install-node``, ``--build-rpm``, ...)."""
    return [e for e in changing_commands(node) if word in e["command"]]


def background_update(salt_run_cli, *args):
    """Start ``salt-run rolling.update`` without waiting for it (its own session, to kill it whole)."""
    cmdline = salt_run_cli.cmdline("rolling.update", *args)
    return subprocess.Popen(cmdline, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def running_state_jobs(salt_cli, minion):
    """The minion's running ``state.single`` jobs (``saltutil.running``), asked through ``salt_cli``'s master (a
    syndic master for a minion under it)."""
    running = salt_cli.run("saltutil.running", minion_tgt=minion).data or []
    return [job for job in running if isinstance(job, dict) and job.get("fun") == "state.single"]


#: An install delay that holds a node's install until the test lets it go (``let_installs_go``): the simulator looks
#: at a running install's delay again every 0.1 s. A fixed delay "long enough" for what the test does meanwhile was
#: not always long enough under load (stopping a salt-minion took over 8 s once in CI).
HOLD = 3600


def hold_installs(nodes, *node_ids):
    for node_id in node_ids:
        nodes[node_id].set_delays(install=HOLD)


def let_installs_go(nodes, *node_ids):
    for node_id in node_ids:
        nodes[node_id].set_delays(install=0)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def answering_minions(salt_run_cli):
    return sorted(salt_run_cli.run("manage.up", "timeout=5", _timeout=60).data or [])


def wait_for_every_minion(salt_run_cli, minions=None, timeout=120):
    """Every minion answers again. After a master restart each minion reconnects on its own
    back-off (seconds), and a job published to it meanwhile is lost: a test after one waits.

    ``minions`` (their daemons' factories): one still silent after ``timeout`` is restarted, and the test says so
    (a warning naming it, with the last lines of its log above debug level), so that one Salt minion that never
    comes back does not fail every later test of the package. Seen once, in CI on Salt 3006.29 under load: after
    the master's restart two idle minions answered nothing for minutes while the third, whose job ran across the
    restart, did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answering_minions(salt_run_cli) == list(NODE_IDS):
            return
        time.sleep(0.5)
    answering = answering_minions(salt_run_cli)
    silent = [factory for factory in minions or () if factory.id not in answering]
    if not silent:
        raise AssertionError("timed out waiting for every minion to answer after the master restart")
    for factory in silent:
        warnings.warn(
            f"minion {factory.id} did not answer {timeout} s after the master restart: restarted; the end of its "
            f"log: {_log_tail(factory)}",
            stacklevel=2,
        )
        with stopped(factory):
            pass
    wait_for(
        lambda: answering_minions(salt_run_cli) == list(NODE_IDS),
        timeout,
        "every minion to answer after the silent ones were restarted",
    )


def _log_tail(factory, lines=15):
    """The last lines of a minion's log above debug level (its log file holds every level)."""
    try:
        with open(factory.config["log_file"], encoding="utf-8", errors="replace") as handle:
            text = handle.read().splitlines()
    except (OSError, KeyError):
        return "(no log)"
    levels = ("][INFO", "][WARNING", "][ERROR", "][CRITICAL")
    return " | ".join(line[-300:] for line in [line for line in text if any(w in line for w in levels)][-lines:])
