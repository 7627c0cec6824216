"""expressware_sim: a simulated Dolphin eXpressWare stack for tests and demos.

A simulated Cluster Node is a directory tree (the node *root*) holding the
state file ``var/lib/expressware-sim/node.json``, the tools
``opt/DIS/sbin/dis_services``, ``opt/DIS/sbin/dis_diag`` and ``usr/bin/rpm``,
the work directory ``var/cache/expressware`` and the journal
``var/log/expressware-sim/journal.jsonl``.  See ``docs/simulator.md``.
"""

from pathlib import Path

from .journal import down_intervals, max_nodes_down, merged_journal, read_journal
from .node import Node, create_node, find_node_root
from .stack import FAULTS, PRODUCTS, ROLES


def __getattr__(name):
    # The installer simulation (hashlib, base64, ...) is loaded only when asked for:
    # the generated tools import this package on every run.
    if name == "write_sia":
        from .sia import write_sia  # pylint: disable=import-outside-toplevel

        return write_sia
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from .versions import SimError, compare_versions, parse_version, rpm_fields, version_key  # noqa: E402


def service_provider_config() -> dict:
    """Minion configuration that makes Salt's ``service`` module drive simulated applications."""
    return {
        "module_dirs": [str(Path(__file__).resolve().parent / "saltmods")],
        "providers": {"service": "expressware_sim_service"},
    }


__all__ = [
    "service_provider_config",
    "FAULTS",
    "PRODUCTS",
    "ROLES",
    "Node",
    "SimError",
    "compare_versions",
    "create_node",
    "down_intervals",
    "find_node_root",
    "max_nodes_down",
    "merged_journal",
    "parse_version",
    "read_journal",
    "rpm_fields",
    "version_key",
    "write_sia",
]
