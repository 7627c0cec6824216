"""How this extension runs vendor tools on a minion: one place for paths and command execution.

Functions take the loader's ``__salt__`` as their first argument so the code stays
shared between execution modules without importing Salt's loader here.
"""

import os

from salt.exceptions import CommandExecutionError

DEFAULTS = {
    "prefix": "/opt/DIS",
    "rpm": "rpm",
    "workdir": "/var/cache/expressware",
}


def config(salt, key):
    """``expressware:<key>`` from minion config, grains or pillar (``config.get``)."""
    value = salt["config.get"](f"expressware:{key}", DEFAULTS[key])
    if not isinstance(value, str) or not value:
        raise CommandExecutionError(f"expressware:{key} must be a non-empty string, not {value!r}")
    return value


def tool_path(salt, name):
    """``<prefix>/sbin/<name>``, checked to exist and be executable."""
    prefix = config(salt, "prefix")
    if not os.path.isabs(prefix):
        raise CommandExecutionError(f"expressware:prefix must be an absolute path, not {prefix!r}")
    path = os.path.join(prefix, "sbin", name)
    if not os.path.isfile(path):
        raise CommandExecutionError(
            f"{path} not found: is Dolphin eXpressWare installed, and is expressware:prefix ({prefix}) right?"
        )
    if not os.access(path, os.X_OK):
        raise CommandExecutionError(f"{path} is not executable")
    return path


def run(salt, argv, cwd=None, timeout=None):
    """Run ``argv`` (a list, never a shell string) and return ``cmd.run_all``'s dict.

    The exit status is left to the caller to judge: ``ignore_retcode`` keeps
    ``cmd.run_all`` from marking the whole Salt job failed, because a non-zero
    status is often an answer (``dis_services status`` exits 3 when a service is
    stopped, ``dis_diag`` 1 while links train).
    """
    if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
        raise CommandExecutionError(f"internal error: command must be a list of strings, not {argv!r}")
    kwargs = {}
    if cwd is not None:
        kwargs["cwd"] = cwd
    if timeout is not None:
        kwargs["timeout"] = timeout
    return salt["cmd.run_all"](
        argv,
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="debug",
        env={"LC_ALL": "C"},
        **kwargs,
    )
