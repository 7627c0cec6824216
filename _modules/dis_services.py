"""
Control the Dolphin eXpressWare services of a Cluster Node with ``dis_services``.

Wraps ``<prefix>/sbin/dis_services start|stop|restart|status`` (Dolphin eXpressWare,
the PCI Express clustering stack: KOSIF, PX/IX/MX, IRM, Node Manager, SISCI and
SuperSockets).

Configuration (minion config, grains or pillar, read with ``config.get``):

.. code-block:: yaml

    expressware:
      prefix: /opt/DIS          # tools are <prefix>/sbin/dis_services and dis_diag

A stopped service is an *answer* of :py:func:`status`, not an error. :py:func:`start`,
:py:func:`stop` and :py:func:`restart` raise ``CommandExecutionError`` naming every
service that failed.
"""

import importlib.util
import logging
import os
import sys

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "dis_services"


def _shared(name):
    """Shared code of this extension: ``<name>.py`` in ``utils/`` or ``_utils/`` beside this module's directory
    (pip install, ``extmods`` after a sync, or a source tree alike; see ``_utils/__init__.py``)."""
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for path in (os.path.join(base, sub, name + ".py") for sub in ("utils", "_utils")):
        if os.path.isfile(path):
            # Keyed by its modification time too: a long-lived process (a master worker)
            # takes up a file changed by a sync or an upgrade.
            key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
            if key not in sys.modules:
                spec = importlib.util.spec_from_file_location(key, path)
                sys.modules[key] = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(sys.modules[key])
            return sys.modules[key]
    raise ImportError(f"{name}.py not found in {base}/utils or {base}/_utils (sync it: saltutil.sync_all)")


try:
    vendor = _shared("expressware_vendor")
    execution = _shared("expressware_exec")
except ImportError as _exc:  # reported by __virtual__
    vendor = execution = None
    _IMPORT_ERROR = str(_exc)


def __virtual__():
    if vendor is None:
        return False, f"dis_services: {_IMPORT_ERROR}"
    return __virtualname__


def _run(*args):
    return execution.run(__salt__, [execution.tool_path(__salt__, "dis_services"), *args])


def _parse_action(result, action):
    try:
        # A line whose [  OK  ] was cut off takes its verdict from the exit status.
        lines = vendor.parse_action_output(result["stdout"], result["retcode"])
    except ValueError as exc:
        raise CommandExecutionError(
            f"cannot understand the output of dis_services {action} (exit {result['retcode']}): {exc}",
            info={"stdout": result["stdout"], "stderr": result["stderr"]},
        ) from exc
    return lines


def _action(action):
    result = _run(action)
    lines = _parse_action(result, action)
    failed = [line["label"] for line in lines if not line["ok"]]
    if failed or result["retcode"] != 0:
        raise CommandExecutionError(
            f"dis_services {action} failed (exit {result['retcode']}) for: "
            + (", ".join(dict.fromkeys(failed)) or "no service named; see output"),
            info={"stdout": result["stdout"], "stderr": result["stderr"]},
        )
    return {
        "result": True,
        "action": action,
        "services": {line["service"]: line["ok"] for line in lines},
        "output": result["stdout"],
    }


def status():
    """
    Report each Dolphin service: whether it runs and which version it runs.

    Returns a dict with ``services`` (per service: ``label``, ``running``,
    ``version``, ``pid``), ``all_running`` and ``running_version`` (the version
    the loaded drivers report, or ``None``). A stopped service is reported, not
    raised (``dis_services status`` exits 3 then, or 1 or 2 as LSB init scripts do for a
    service that is dead). Lines are understood in the vendor's own forms (a build date,
    a ``(GX)`` qualifier, a codename) as well as the simple ones; see ``expressware_vendor``.

    CLI Example:

    .. code-block:: bash

        salt '*' dis_services.status
    """
    result = _run("status")
    # LSB status codes: 0 all run; 1 dead, pid file left; 2 dead, lock left; 3 not running.
    if result["retcode"] not in (0, 1, 2, 3):
        raise CommandExecutionError(
            f"dis_services status failed with exit status {result['retcode']}: {result['stderr'].strip()}"
        )
    try:
        services = vendor.parse_status(result["stdout"])
        version = vendor.running_version(services)
    except ValueError as exc:
        raise CommandExecutionError(f"cannot understand the output of dis_services status: {exc}") from exc
    all_running = all(entry["running"] for entry in services.values())
    if all_running != (result["retcode"] == 0):
        raise CommandExecutionError(
            f"dis_services status exited {result['retcode']} but reported "
            f"{'all' if all_running else 'not all'} services running"
        )
    return {"services": services, "all_running": all_running, "running_version": version}


def start():
    """
    Start all Dolphin services (``dis_services start``).

    Raises ``CommandExecutionError`` naming the services that failed to start
    (for example when memory is too fragmented for the IRM driver; a reboot fixes that).

    CLI Example:

    .. code-block:: bash

        salt '*' dis_services.start
    """
    return _action("start")


def stop():
    """
    Stop all Dolphin services (``dis_services stop``), SuperSockets first, KOSIF last.

    Raises ``CommandExecutionError`` naming the services that could not be stopped
    (typically an application still holds SuperSockets; stop it, or install with
    ``reboot=True``).

    CLI Example:

    .. code-block:: bash

        salt '*' dis_services.stop
    """
    return _action("stop")


def restart():
    """
    Restart all Dolphin services (``dis_services restart``: stop, then start).

    CLI Example:

    .. code-block:: bash

        salt '*' dis_services.restart
    """
    return _action("restart")
