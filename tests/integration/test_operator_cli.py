"""The real ``salt`` and ``salt-run`` command lines, run from a shell as an operator runs them.

pytest-salt-factories' CLI wrappers start Salt's entry points their own way; these tests run the console
scripts installed with Salt in this environment (``bin/salt``, ``bin/salt-run``) in a subprocess, with the
test master's configuration directory (``-c``), no terminal and nothing else. Every call is bounded: a
command line that never returns (Salt 3006.29's did, with some dependency sets: see README, "Supported Salt
versions") fails its test, named, instead of holding the suite. A whole rollout from the shell:
``test_rolling.py::test_happy_path_one_node_at_a_time_with_one_build_per_group`` (with ``operator`` below).
"""

import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

from tests.integration.conftest import NODE_IDS
from tests.integration.rollouts import data_nodes, no_leftover_lease, roots  # noqa: F401 (fixtures)

BIN = pathlib.Path(sys.executable).parent


def operator(master, command, *args, timeout=120):
    """Run ``<command> -c <master config dir> --out=json <args>``; its exit status, JSON output and stderr."""
    script = BIN / command
    assert script.is_file(), f"{script} is not installed beside {sys.executable}"
    cmdline = [str(script), "-c", str(master.config_dir), "--out=json", *args]
    proc = subprocess.Popen(
        cmdline,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(
            f"`{' '.join(cmdline)}` did not return within {timeout} s\nstdout: {stdout[-2000:]}\n"
            f"stderr: {stderr[-2000:]}"
        )
    try:
        data = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        data = stdout
    return proc.returncode, data, stderr


def test_salt_test_ping(master, minions):
    returncode, data, stderr = operator(master, "salt", "--static", "--timeout=60", "*", "test.ping")
    assert returncode == 0, stderr
    assert data == {node_id: True for node_id in NODE_IDS}


def test_salt_run_manage_up(master, minions):
    returncode, data, stderr = operator(master, "salt-run", "manage.up")
    assert returncode == 0, stderr
    assert sorted(data) == list(NODE_IDS)
