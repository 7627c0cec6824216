"""Processes that really cannot read a file of mode 000, also when the tests run as root.

``chmod 000`` makes a file unreadable for an ordinary user, not for root: root reads
it anyway thanks to the capabilities CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (and
``access(2)``, which the modules use, says so too). CI runs as root. So a test of an
unreadable installer runs the process that has to read it (a ``salt-minion`` daemon,
``salt-call``) under ``setpriv`` (util-linux) without those two capabilities: the
module under test then meets a real EACCES, nothing in it is mocked.

- :func:`no_read_prefix` gives the command prefix for that, after checking that a
  process started with it really cannot read the file; ``[]`` when this process
  already cannot (not root, or root without the capabilities): plain ``chmod 000``
  suffices. Without ``setpriv``, or where it cannot drop the capabilities, it skips
  the test with the reason; it never lets such a test pass without the check.
- :class:`PrefixedSaltMinion` and :class:`PrefixedSaltCall` are the pytest-salt-factories
  factories of ``salt-minion`` and ``salt-call`` with such a prefix in front of their
  command line (``setpriv`` execs the command: the daemon keeps its process id).
"""

import json
import os
import shutil
import subprocess
import sys

import attr
import pytest
from saltfactories.cli.call import SaltCall
from saltfactories.daemons.minion import SaltMinion

#: The capabilities that let root read (and search) any file whatever its mode.
DAC_CAPABILITIES = ("dac_override", "dac_read_search")

_PROBE = """
import json, os, sys
path = sys.argv[1]
try:
    open(path, "rb").close()
except PermissionError:
    opened = False
else:
    opened = True
print(json.dumps({"open": opened, "access": os.access(path, os.R_OK)}))
"""


def _readable_here(path):
    try:
        open(path, "rb").close()  # pylint: disable=consider-using-with
    except PermissionError:
        return os.access(path, os.R_OK)
    return True


def no_read_prefix(path):
    """The command prefix under which a process cannot read ``path``: ``[]`` or a ``setpriv`` command line.

    Skips the calling test when this process can read ``path`` and no tool here can
    take that power away; fails it when the tool ran but the file stayed readable.
    """
    if not _readable_here(path):
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip(
            f"setpriv (util-linux) not found: this process (uid {os.geteuid()}) reads a file of mode 000 "
            "and cannot start one without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH to test an unreadable file"
        )
    drop = ",".join(f"-{cap}" for cap in DAC_CAPABILITIES)
    # The inheritable set too: root's execve keeps what is inheritable (and the
    # ambient set, a subset of it), whatever the bounding set says.
    prefix = [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip(
            f"setpriv cannot drop CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH here (exit status "
            f"{probe.returncode}): {probe.stderr.strip()}"
        )
    seen = json.loads(probe.stdout)
    if seen != {"open": False, "access": False}:
        pytest.fail(f"{' '.join(prefix)} did not make {path} unreadable: {seen}")
    return prefix


@attr.s(kw_only=True, slots=True)
class PrefixedSaltMinion(SaltMinion):
    """A ``salt-minion`` daemon factory whose command line starts with ``command_prefix``."""

    command_prefix = attr.ib(factory=list)

    def cmdline(self, *args):
        return [*self.command_prefix, *SaltMinion.cmdline(self, *args)]


@attr.s(kw_only=True, slots=True)
class PrefixedSaltCall(SaltCall):
    """A ``salt-call`` factory whose command line starts with ``command_prefix``."""

    command_prefix = attr.ib(factory=list)

    def cmdline(self, *args, **kwargs):  # pylint: disable=arguments-differ
        return [*self.command_prefix, *SaltCall.cmdline(self, *args, **kwargs)]
