"""Fixtures for the simulator tests (all prefixed ``sim_`` to stay out of the way of other suites)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import expressware_sim

SRC_DIR = str(Path(expressware_sim.__path__[0]).resolve().parent)

# tiny delays keep every test file well below 20 s
FAST = {"build": 0.05, "install": 0.05, "link_training": 0.2, "reboot": 0.3}


def clean_env() -> dict:
    """Environment without PYTHONPATH: generated tools must find the package on their own."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def run(args, cwd=None, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run(
        [sys.executable, "-m", "expressware_sim", *[str(a) for a in args]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def wait_until(predicate, timeout=5.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def sim_node(tmp_path):
    """Factory: ``sim_node("node1", **create_node kwargs)`` with fast delays."""

    def make(name="node1", **kwargs):
        params = dict(FAST)
        params.update(kwargs)
        return expressware_sim.create_node(tmp_path / "cluster" / name, name=name, **params)

    return make


@pytest.fixture
def sim_sia(tmp_path):
    """Factory: ``sim_sia("5.26.0", corrupt=False)`` -> path of a SIA in tmp_path/sias."""

    def make(version, corrupt=False):
        return expressware_sim.write_sia(tmp_path / "sias", version, corrupt=corrupt)

    return make


@pytest.fixture
def sim_run():
    """``sim_run([tool, args...], cwd=None)`` -> CompletedProcess (text, captured, no PYTHONPATH)."""
    return run


@pytest.fixture
def sim_cli():
    """``sim_cli("node", "show", root)`` runs ``python -m expressware_sim``."""
    return cli


@pytest.fixture
def sim_wait():
    """``sim_wait(predicate, timeout=5)`` polls until the predicate is true."""
    return wait_until
