"""Shared fixtures: pytest-salt-factories configuration and simulated eXpressWare nodes."""

import atexit
import errno
import logging
import os
import pathlib
import shutil
import sys
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

#: Versions used throughout the tests.
OLD = "5.25.2"
NEW = "5.26.0"
NEWER = "5.26.1"
OLDER = "5.24.0"

#: Delays of the simulated nodes, in seconds: short, but long enough that ordering
#: mistakes (two nodes down at once) show in the journals.
FAST_DELAYS = {"build": 0.3, "install": 0.2, "link_training": 0.4, "reboot": 0.5}


def pytest_sessionfinish(session):
    """Drop what Salt's deferred stderr handler queued in this test process (and, in an xdist worker, hand the
    deterministic simulation's figures to the controller).

    Importing Salt installs a handler that keeps every log record (including those
    the daemons forward to the test process) and writes them out at interpreter
    exit, after pytest has closed its streams: thousands of "Logging error" lines.
    pytest already captured and reported the records that matter.
    """
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None and _explored():
        workeroutput["expressware_simulation"] = dict(_explored())
    import salt._logging.impl  # pylint: disable=import-outside-toplevel

    handler = salt._logging.impl.get_temp_handler()
    if handler is not None:
        logging.root.removeHandler(handler)
        # Salt 3006/3007 register the bound method itself at exit; 3008 looks the attribute up then.
        atexit.unregister(handler.flush)
        handler.flush = lambda: None


# -- what the deterministic simulation explored, said at the end of the run ------------------------------------
# (tests/unit/test_simulation.py). Run in pytest-xdist workers (scripts/test runs two), the figures travel from the
# worker that ran it to the controller, which says them.

#: The simulation's figures as the controller got them from a worker.
_EXPLORED_IN_WORKERS = {}


def _explored():
    module = sys.modules.get("tests.unit.test_simulation")
    return getattr(module, "EXPLORED", None) or _EXPLORED_IN_WORKERS


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):  # pylint: disable=unused-argument  # xdist's, in the controller
    _EXPLORED_IN_WORKERS.update(getattr(node, "workeroutput", {}).get("expressware_simulation") or {})


def pytest_terminal_summary(terminalreporter):
    explored = _explored()
    if explored:
        terminalreporter.write_sep("-", "deterministic simulation")
        terminalreporter.write_line(
            f"{explored['schedules']} schedules (seeds {explored['seeds']}), {explored['crash_points']} crash points "
            f"explored, {explored['resumes']} resumes, {explored['failures']} failure(s), {explored['seconds']} s"
        )


#: The order the suite runs in: the plain-Python tests first (tests/unit, tests/sim), then those with a minion's
#: loader (tests/functional), then the real daemons (tests/integration*). .ci/run installs the other Salt releases'
#: environments in the background meanwhile, which loads the CPU: the timing-sensitive daemon tests come after.
SUITE_ORDER = {"unit": 0, "sim": 1, "functional": 2}

#: Within tests/integration, the files that take longest (2 to 6 minutes each) first: scripts/test's two pytest-xdist
#: workers take a file each at a time, and with the long ones first they end at about the same time (the last file of
#: one worker does not run alone). Each package stays in one piece: a worker that left it would start its master and
#: minions again.
LONGEST_FIRST = ("test_faults.py", "test_rolling.py", "test_state.py", "test_operator_controls.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        path = pathlib.Path(str(getattr(item, "path", None) or item.fspath)).resolve()
        parts = path.parts
        part = parts[len(REPO.parts) + 1] if parts[: len(REPO.parts) + 1] == (*REPO.parts, "tests") else None
        long_file = part == "integration" and path.name in LONGEST_FIRST
        return (SUITE_ORDER.get(part, len(SUITE_ORDER)), part or "", 0 if long_file else 1)

    items.sort(key=rank)  # stable: the order within each part stays pytest's


@pytest.fixture(scope="session")
def salt_factories_config():
    # The daemons' directories in one of this session's own (pytest-salt-factories would put them straight under
    # TMPDIR, naming each with a check-then-create that two pytest-xdist workers could both pass); short, for the
    # daemons' Unix socket paths.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    root_dir = tempfile.mkdtemp(prefix=f"xw-{worker}-")
    yield {
        "code_dir": str(REPO),
        "inject_sitecustomize": False,
        "start_timeout": 120 if os.environ.get("CI") else 60,
        "root_dir": root_dir,
    }
    shutil.rmtree(root_dir, ignore_errors=True)


def fresh_node(root, name, version=OLD, applications=(), **kwargs):
    """(Re)create a simulated node at ``root``: installed, running and active.

    ``applications`` run on it and hold SuperSockets (``ndbmtd`` on a MySQL Cluster
    data node): they must be stopped before the services can stop.
    """
    from expressware_sim import create_node  # pylint: disable=import-outside-toplevel

    root = pathlib.Path(root)
    if root.exists():
        remove_node_tree(root)
    options = dict(FAST_DELAYS)
    options.update(kwargs)
    node = create_node(root, name=name, version=version, **options)
    for app in applications:
        node.add_application(app)
    return node


def remove_node_tree(root, attempts=30):
    """Remove a node's directory, again while something still writes in it.

    A simulated tool that a minion started in the test before (a job ending, a look at the node) may still append to
    the node's journal while the tree is removed: ``rmtree`` then finds a directory it emptied not empty (seen once
    in a whole-suite run). Such a writer ends within moments; one that does not fails the test after ~3 s.
    """
    for attempt in range(attempts):
        try:
            shutil.rmtree(root)
            return
        except FileNotFoundError:
            if not os.path.lexists(root):
                return
            if attempt == attempts - 1:
                raise
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY or attempt == attempts - 1:
                raise
        time.sleep(0.1)


#: Journal commands that only look at a node.
READ_ONLY_COMMANDS = ("rpm ", "dis_services status", "dis_diag")


def changing_commands(node):
    """The journal's commands that could have changed the node (queries left out)."""
    return [e for e in node.journal() if "command" in e and not e["command"].startswith(READ_ONLY_COMMANDS)]
