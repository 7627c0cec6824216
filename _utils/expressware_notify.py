"""The Network Manager's notification script (``salt/expressware/files/cluster-notify.sh``, installed on a frontend by
the ``expressware.notify`` state) as the execution module reads it: where it keeps its last cluster-state report
(``<state_dir>/state.json``), and that report read and checked. Salt's exception class apart, plain Python."""

import json
import os

from salt.exceptions import CommandExecutionError

#: Where the script keeps its last report, unless ``expressware:notify:state_dir`` says otherwise (as the
#: ``expressware.notify`` state does).
STATE_DIR = "/var/lib/expressware/cluster-notify"


def read_report(state_dir):
    """The last cluster-state report in ``<state_dir>/state.json``: ``{"state", "node", "seq", "time"}``; a
    ``CommandExecutionError`` when none is on record (the script is not installed or has not run yet) or it cannot
    be read."""
    path = os.path.join(state_dir, "state.json")
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except FileNotFoundError:
        raise CommandExecutionError(
            f"no cluster state on record ({path}): the Network Manager's notification script is not installed "
            "or has not run (salt <frontend> state.apply expressware.notify)"
        ) from None
    except (OSError, ValueError) as exc:
        raise CommandExecutionError(f"cannot read the cluster state in {path}: {exc}") from exc
    if not isinstance(report, dict):
        raise CommandExecutionError(f"{path} holds no cluster-state report: {report!r}")
    return report
