"""A Cluster Node judged from what its tools say, for the execution module ``expressware``: its state with the
evidence (one look: ``dis_services status`` and ``dis_diag``, in turn or at once), and what its update needs (the
vendor's rules of ``expressware_vendor.update_decision``, with a rollback's downgrade allowed from exactly one
version).

Plain Python, no Salt: the execution module passes its tools in as callables (or their parsed answers).
"""

import concurrent.futures
import contextlib
import contextvars
import importlib.util
import os
import sys


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


vendor = _sibling("expressware_vendor")


@contextlib.contextmanager
def meanwhile(func, *args):
    """Run ``func(*args)`` in a thread while the block runs; yields its future. The
    thread carries the loader's context, so ``func`` may use ``__salt__``."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(contextvars.copy_context().run, func, *args)


def look(status, diag, installed, quick=False, together=False):
    """One look at the node: :func:`node_state` from its tools, run by ``status()`` (``dis_services.status``),
    ``diag()`` (``expressware.diag``) and ``installed()`` (the installed version). ``quick``: no ``dis_diag`` once
    the services are seen down (a partial answer: ``diag: None``). ``together``: ``dis_diag`` and the version's
    read run while ``dis_services status`` runs (:func:`meanwhile`): the look takes as long as its slowest tool, not
    their sum; otherwise one after the other, the version last."""
    if together:
        with meanwhile(diag) as pending_diag, meanwhile(installed) as pending_version:
            answer = status()
            diag_result, version = pending_diag.result(), (pending_version.result(),)
    else:
        answer, diag_result, version = status(), None, None
    if quick and stopped_services(answer):
        diag_result = None  # the first sign is enough
    else:
        diag_result = diag_result or diag()
    return node_state(answer, diag_result, installed() if version is None else version[0])


def stopped_services(status):
    """The labels of the services ``status`` (``dis_services.status``) reports not running."""
    return [entry["label"] for entry in status["services"].values() if not entry["running"]]


def node_state(status, diag, installed):
    """The node's state with its evidence: ``active`` when every service runs and ``dis_diag`` passes. ``status``:
    ``dis_services.status``'s answer; ``diag``: ``expressware.diag``'s, or None when it was not run (a quick look
    at a node whose services are down: then ``diag: None``); ``installed``: the installed version."""
    reasons = []
    stopped = stopped_services(status)
    if stopped:
        reasons.append("services not running: " + ", ".join(stopped))
    diag_summary = None
    if diag is not None:
        diag_summary = {"passed": diag["passed"], "summary": diag["lines"][-3:]}
        if not diag["passed"]:
            reasons.append("dis_diag: " + "; ".join(diag["lines"][-3:]))
    active = not reasons
    return {
        "state": "active" if active else "inactive",
        "active": active,
        "installed": installed,
        "running": status["running_version"],
        "services": {key: entry["running"] for key, entry in status["services"].items()},
        "diag": diag_summary,
        "reasons": reasons,
    }


def update_decision(version, enforce, compat, installed, running, downgrade_from=None):
    """What the node needs to reach ``version`` from ``installed``/``running`` (arguments checked, ``compat``
    valid): ``expressware_vendor.update_decision``'s answer; with ``downgrade_from`` (a rollback) and without
    ``enforce``, a downgrade allowed only from exactly that version. With the versions it was decided on."""
    decision = vendor.update_decision(installed, running, version, enforce=bool(enforce), compat=compat)
    if downgrade_from is not None and not enforce and _older(version, installed):
        decision = _rollback_decision(decision, version, compat, installed, running, downgrade_from)
    decision.update({"installed": installed, "running": running, "target": version})
    return decision


def _older(version, installed):
    return installed is not None and vendor.compare_versions(version, installed) < 0


def _rollback_decision(decision, version, compat, installed, running, downgrade_from):
    """A rollback's downgrade (``downgrade_from``): allowed from exactly that version (the release-notes rule
    still applies), refused from any other."""
    if installed != downgrade_from:
        return {
            "action": "refuse",
            "reason": f"{version} is older than the installed {installed}: the rollback allows the downgrade "
            f"only from {downgrade_from}",
        }
    decision = vendor.update_decision(installed, running, version, enforce=True, compat=compat)
    if decision["action"] == "install":
        decision.update(downgrade=True, reason=f"rollback from {downgrade_from}: {decision['reason']}")
    return decision
