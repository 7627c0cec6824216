"""
Run the Dolphin eXpressWare installer (SIA, ``Dolphin_eXpressWare-<version>.sh``).

The SIA is run as ``sh <sia> <options> --batch`` in the work directory
(``expressware:workdir``), the way the vendor manual has root do it by hand. It
writes ``node_RPMS/`` and ``frontend_RPMS/`` there with ``--build-rpm``, and installs
with ``--install-node`` / ``--install-frontend``, from those RPMs with ``--use-rpms``.

``sia`` is a local absolute path or a ``salt://`` URL (fetched with
``cp.cache_file``). Commands are argument lists, never shell strings. Every input
is checked before anything runs: a missing or unreadable SIA, a file that is not a
``Dolphin_eXpressWare-*.sh`` installer, a downgrade or reinstall without
``enforce=True`` raise ``SaltInvocationError`` and change nothing. A failing
installer raises ``CommandExecutionError`` with its exit status and standard error.

Configuration (minion config, grains or pillar):

.. code-block:: yaml

    expressware:
      workdir: /var/cache/expressware   # where the SIA runs; node_RPMS/ are built here
"""

import base64
import binascii
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import sys

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "sia"

#: The installer's name: ``Dolphin_eXpressWare-<version>.sh`` (5.x), ``DIS_install_<version>.sh`` (3.x, facts §2).
_SIA_NAME_RE = re.compile(r"^(?:Dolphin_eXpressWare-|DIS_install_)[A-Za-z0-9._+-]+\.sh\Z")


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
        return False, f"sia: {_IMPORT_ERROR}"
    return __virtualname__


# ---------------------------------------------------------------------------
# Input checks: all of them run before the installer does.
# ---------------------------------------------------------------------------


def _flag(value, name):
    if not isinstance(value, bool):
        raise SaltInvocationError(f"{name} must be True or False, not {value!r}")
    return value


def _saltenv(saltenv):
    """The file server environment as the string Salt's file client needs, or None for the minion's default.

    A number is taken as the environment of that name (``saltenv=2024`` on the command line arrives as an int):
    Salt 3008's file client casts it, 3006 and 3007 end in a ``TypeError`` deep inside it, so it is cast here.
    """
    if saltenv is None:
        return None
    if isinstance(saltenv, int) and not isinstance(saltenv, bool):
        saltenv = str(saltenv)
    if not isinstance(saltenv, str) or not saltenv.strip():
        raise SaltInvocationError(f"saltenv must be the name of a file server environment, not {saltenv!r:.200}")
    if any(char in saltenv for char in "\n\r\0"):
        raise SaltInvocationError(f"saltenv {saltenv!r:.200} must not contain a newline or NUL character")
    return saltenv


def _resolve_sia(sia, saltenv=None):
    """A readable local path to the installer; ``salt://`` URLs are cached first."""
    saltenv = _saltenv(saltenv)
    if not isinstance(sia, str) or not sia.strip():
        raise SaltInvocationError(
            f"sia must be a path or salt:// URL of a Dolphin_eXpressWare-<version>.sh installer, not {sia!r}"
        )
    if "\n" in sia or "\0" in sia:
        raise SaltInvocationError(f"sia {sia!r} contains a newline or NUL character")
    if sia.startswith("salt://"):
        cached = __salt__["cp.cache_file"](sia, saltenv) if saltenv else __salt__["cp.cache_file"](sia)
        if not cached:
            raise SaltInvocationError(f"installer {sia} was not found on the master's file server")
        path = cached
    elif os.path.isabs(sia):
        path = sia
    else:
        raise SaltInvocationError(f"sia {sia!r} must be an absolute path or a salt:// URL")
    name = os.path.basename(path)
    if not _SIA_NAME_RE.match(name):
        raise SaltInvocationError(
            f"{path} is not an eXpressWare installer: the name must be "
            "Dolphin_eXpressWare-<version>.sh (or the 3.x DIS_install_<version>.sh)"
        )
    if not os.path.isfile(path):
        raise SaltInvocationError(f"installer {path} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise SaltInvocationError(f"installer {path} is not readable")
    return path


def _workdir(workdir):
    if workdir is None:
        workdir = execution.config(__salt__, "workdir")
    if not isinstance(workdir, str) or not os.path.isabs(workdir) or "\n" in workdir:
        raise SaltInvocationError(f"workdir must be an absolute path, not {workdir!r}")
    return workdir


def _use_rpms(use_rpms, workdir, kind):
    """The directory given to ``--use-rpms``: it must hold ``<kind>_RPMS/*.rpm``."""
    if use_rpms is None or use_rpms is False:
        return None
    if use_rpms is True:
        use_rpms = workdir
    if not isinstance(use_rpms, str) or not os.path.isabs(use_rpms) or "\n" in use_rpms:
        raise SaltInvocationError(f"use_rpms must be True or an absolute directory path, not {use_rpms!r}")
    if not glob.glob(os.path.join(glob.escape(use_rpms), f"{kind}_RPMS", "*.rpm")):
        raise SaltInvocationError(
            f"use_rpms: {use_rpms}/{kind}_RPMS/ holds no RPM packages (build them with sia.build_rpm)"
        )
    return use_rpms


def _timeout(timeout):
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
        raise SaltInvocationError(f"timeout must be a number of seconds between 0 and 86400, not {timeout!r}")
    return timeout


def _check_not_older(path, enforce):
    """Refuse a same-or-older installer before running it, as the SIA itself would."""
    target = vendor.sia_version(os.path.basename(path))
    installed = __salt__["expressware.version"]()
    if target and installed and not enforce and vendor.compare_versions(target, installed) <= 0:
        what = "reinstall" if vendor.compare_versions(target, installed) == 0 else "downgrade"
        raise SaltInvocationError(
            f"{os.path.basename(path)} would {what} eXpressWare ({installed} is installed, the installer is {target}): "
            "pass enforce=True to do that"
        )
    return target, installed


def _run_sia(path, options, workdir, timeout):
    os.makedirs(workdir, exist_ok=True)
    argv = ["sh", path, *options, "--batch"]
    result = execution.run(__salt__, argv, cwd=workdir, timeout=timeout)
    if result["retcode"] != 0:
        raise CommandExecutionError(
            f"{os.path.basename(path)} {' '.join(options)} failed with exit status {result['retcode']}: "
            f"{result['stderr'].strip() or result['stdout'].strip()[-500:]}",
            info={"retcode": result["retcode"], "stdout": result["stdout"], "stderr": result["stderr"]},
        )
    return result


def _rpms(directory, kind):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(directory), f"{kind}_RPMS", "*.rpm")))


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def version(sia):
    """
    Return the eXpressWare version an installer carries in its file name
    (``Dolphin_eXpressWare-5.26.0.sh`` -> ``5.26.0``), or ``None`` if the name
    shows none.

    CLI Example:

    .. code-block:: bash

        salt '*' sia.version salt://expressware/Dolphin_eXpressWare-5.26.0.sh
    """
    if not isinstance(sia, str):
        raise SaltInvocationError(f"sia must be a path or salt:// URL, not {sia!r}")
    return vendor.sia_version(os.path.basename(sia))


def fetch(sia, saltenv=None):
    """
    Check an installer and make it local: a ``salt://`` URL is cached from the
    master with ``cp.cache_file``. Returns ``{"path": local path, "version":
    version in its name or None}``. Nothing on the node changes.

    CLI Example:

    .. code-block:: bash

        salt '*' sia.fetch salt://expressware/Dolphin_eXpressWare-5.26.0.sh
    """
    path = _resolve_sia(sia, saltenv)
    return {"path": path, "version": vendor.sia_version(os.path.basename(path))}


def clear_rpms(workdir=None):
    """
    Remove ``node_RPMS/`` and ``frontend_RPMS/`` from the work directory, so that
    RPMs of another version are never picked up by ``--use-rpms``.

    CLI Example:

    .. code-block:: bash

        salt '*' sia.clear_rpms
    """
    workdir = _workdir(workdir)
    removed = []
    for kind in ("node", "frontend"):
        directory = os.path.join(workdir, f"{kind}_RPMS")
        if os.path.isdir(directory):
            shutil.rmtree(directory)
            removed.append(directory)
    return {"workdir": workdir, "removed": removed}


def receive_rpms(files, clear=False, workdir=None):
    """
    Write node RPMs sent from the master into ``<workdir>/node_RPMS/`` (what the
    ``rolling`` runner uses to stage the RPMs built once on another node of the
    same group: one publish reaches every node, whatever its work directory).

    files
        A list of pieces ``{"name": <Dolphin-*.rpm file name>, "data": <base64>,
        "append": <bool>}``; a large file comes in several pieces, the first with
        ``append: False``.
    clear
        Remove ``node_RPMS/`` and ``frontend_RPMS/`` first (:py:func:`clear_rpms`).
    workdir
        Default ``expressware:workdir``.

    Every piece is checked before anything is written. Returns the directory, the
    files written, and the SHA-256 of every RPM now in it (the sender compares).

    CLI Example:

    .. code-block:: bash

        salt node2 sia.receive_rpms \\
            '[{"name": "Dolphin-PX-5.26.0-1.x86_64.rpm", "data": "e30K", "append": false}]' clear=True
    """
    workdir = _workdir(workdir)
    _flag(clear, "clear")
    if not isinstance(files, list):
        raise SaltInvocationError(f"files must be a list of {{name, data, append}} pieces, not {type(files).__name__}")
    pieces = []
    for piece in files:
        if not isinstance(piece, dict) or set(piece) != {"name", "data", "append"}:
            raise SaltInvocationError(f"each piece of files must be {{name, data, append}}, not {piece!r:.200}")
        name = piece["name"]
        if not isinstance(name, str) or os.path.basename(name) != name or not vendor.parse_rpm_filename(name):
            raise SaltInvocationError(f"{name!r:.200} is not the file name of an eXpressWare RPM (Dolphin-*.rpm)")
        _flag(piece["append"], "append")
        try:
            data = base64.b64decode(piece["data"], validate=True)
        except (TypeError, ValueError, binascii.Error) as exc:
            raise SaltInvocationError(f"the data of {name} is not base64: {exc}") from None
        pieces.append((name, data, piece["append"]))
    if clear:
        clear_rpms(workdir)
    directory = os.path.join(workdir, "node_RPMS")
    written = []
    try:
        os.makedirs(directory, exist_ok=True)
        for name, data, append in pieces:
            with open(os.path.join(directory, name), "ab" if append else "wb") as handle:
                handle.write(data)
            if name not in written:
                written.append(name)
        digests = {}
        for name in sorted(os.listdir(directory)):
            if name.endswith(".rpm"):
                with open(os.path.join(directory, name), "rb") as handle:
                    digests[name] = hashlib.sha256(handle.read()).hexdigest()
    except OSError as exc:
        raise CommandExecutionError(f"could not write the RPMs to {directory}: {exc}") from exc
    return {"directory": directory, "written": written, "sha256": digests}


#: Most bytes of RPM data :py:func:`read_rpms` returns in one answer.
_READ_MAX = 64 * 1024 * 1024


def read_rpms(names, offset=0, size=4 * 1024 * 1024, workdir=None):
    """
    Read node RPMs built here (``<workdir>/node_RPMS/``) for the master, in the
    pieces :py:func:`receive_rpms` takes: what the ``rolling`` runner uses to bring
    the RPMs built once on a group's builder to the master it runs on. They travel
    in job returns, so they reach the master that published the job whatever is in
    between (a syndic), and the master needs no ``file_recv``.

    names
        The RPM file names, in order (``node_rpms`` of :py:func:`build_rpm`).
    offset
        Where to start, in bytes, in the named files taken one after the other
        (``next`` of the answer before).
    size
        Bytes of data in this answer at most (default 4 MiB, at most 64 MiB).
    workdir
        Default ``expressware:workdir``.

    Returns ``{"pieces": [{"name", "data" (base64), "append"}], "next": <offset
    of the next answer, or None when this one ends the files>, "sha256": {name:
    SHA-256 of the whole file}}``. Nothing on the node changes.

    CLI Example:

    .. code-block:: bash

        salt node1 sia.read_rpms '["Dolphin-PX-5.26.0-1.x86_64.rpm"]'
        salt node1 sia.read_rpms '["Dolphin-PX-5.26.0-1.x86_64.rpm"]' offset=4194304
    """
    workdir = _workdir(workdir)
    if not isinstance(names, list) or not names:
        raise SaltInvocationError(f"names must be a non-empty list of RPM file names, not {names!r:.200}")
    for name in names:
        if not isinstance(name, str) or os.path.basename(name) != name or not vendor.parse_rpm_filename(name):
            raise SaltInvocationError(f"{name!r:.200} is not the file name of an eXpressWare RPM (Dolphin-*.rpm)")
    for value, what, low, high in ((offset, "offset", 0, None), (size, "size", 1, _READ_MAX)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
            raise SaltInvocationError(
                f"{what} must be a whole number of bytes from {low}"
                + (f" to {high}" if high else "")
                + f", not {value!r}"
            )
    directory = os.path.join(workdir, "node_RPMS")
    pieces, digests, start, position = [], {}, offset, 0
    try:
        for name in names:
            with open(os.path.join(directory, name), "rb") as handle:
                content = handle.read()
            digests[name] = hashlib.sha256(content).hexdigest()
            if size and position <= start < position + len(content):
                piece = content[start - position : start - position + size]
                pieces.append({"name": name, "data": base64.b64encode(piece).decode(), "append": start > position})
                start, size = start + len(piece), size - len(piece)
            position += len(content)
    except OSError as exc:
        raise CommandExecutionError(f"could not read the RPMs in {directory}: {exc}") from exc
    return {"pieces": pieces, "next": start if start < position else None, "sha256": digests}


def build_rpm(sia, workdir=None, saltenv=None, timeout=None, clear=False, push=False):
    """
    Build the binary RPMs for this node's CPU architecture and kernel
    (``sh <sia> --build-rpm --batch`` in ``workdir``) into ``<workdir>/node_RPMS/``
    and ``<workdir>/frontend_RPMS/``.

    sia
        Absolute path or ``salt://`` URL of ``Dolphin_eXpressWare-<version>.sh``.
    workdir
        Where to build; default ``expressware:workdir`` (``/var/cache/expressware``).
    timeout
        Seconds before the build is killed (default: no limit).
    clear
        Remove the RPMs of earlier builds first (:py:func:`clear_rpms`), so that
        only this version's are found afterwards.
    push
        Send ``node_RPMS/`` to the master afterwards (``cp.push_dir``; the master
        needs ``file_recv: True``), for an operator who stages them by hand. The
        ``rolling`` runner reads them with :py:func:`read_rpms` instead. ``pushed``
        in the result says whether it worked.

    CLI Example:

    .. code-block:: bash

        salt node1 sia.build_rpm salt://expressware/Dolphin_eXpressWare-5.26.0.sh
        salt node1 sia.build_rpm salt://expressware/Dolphin_eXpressWare-5.26.0.sh clear=True push=True
    """
    workdir = _workdir(workdir)
    timeout = _timeout(timeout)
    _flag(clear, "clear")
    _flag(push, "push")
    path = _resolve_sia(sia, saltenv)
    if clear:
        clear_rpms(workdir)
    result = _run_sia(path, ["--build-rpm"], workdir, timeout)
    ret = {
        "sia": path,
        "version": vendor.sia_version(os.path.basename(path)),
        "workdir": workdir,
        "node_rpms": _rpms(workdir, "node"),
        "frontend_rpms": _rpms(workdir, "frontend"),
        "output": result["stdout"],
    }
    if push:
        ret["pushed"] = __salt__["cp.push_dir"](os.path.join(workdir, "node_RPMS")) is True
    return ret


def _install(kind, sia, use_rpms, reboot, enforce, workdir, saltenv, timeout):
    reboot = _flag(reboot, "reboot")
    enforce = _flag(enforce, "enforce")
    workdir = _workdir(workdir)
    timeout = _timeout(timeout)
    use_rpms = _use_rpms(use_rpms, workdir, kind)
    path = _resolve_sia(sia, saltenv)
    target, before = (
        _check_not_older(path, enforce) if kind == "node" else (vendor.sia_version(os.path.basename(path)), None)
    )
    options = [f"--install-{kind}"]
    if use_rpms:
        options += ["--use-rpms", use_rpms]
    if reboot:
        options.append("--reboot")
    if enforce:
        options.append("--enforce")
    result = _run_sia(path, options, workdir, timeout)
    ret = {
        "sia": path,
        "version": target,
        "options": options + ["--batch"],
        "rebooting": reboot,
        "output": result["stdout"],
        "warnings": result["stderr"].strip(),
    }
    if kind == "node":
        ret["installed_before"] = before
        ret["installed"] = __salt__["expressware.version"]()
    return ret


def install_node(sia, use_rpms=None, reboot=False, enforce=False, workdir=None, saltenv=None, timeout=None):
    """
    Install the node packages on this Cluster Node and start the updated services
    (``sh <sia> --install-node [--use-rpms DIR] [--reboot] [--enforce] --batch``).

    sia
        Absolute path or ``salt://`` URL of ``Dolphin_eXpressWare-<version>.sh``.
    use_rpms
        Directory holding ``node_RPMS/`` built by :py:func:`build_rpm` (``True``:
        the work directory). Without it the installer builds them first.
    reboot
        Reboot the node after a successful installation (needed when the services
        could not be stopped, or failed to start).
    enforce
        Allow installing the same or an older version than the installed one.

    Refuses (``SaltInvocationError``, nothing run) a downgrade or reinstall
    without ``enforce=True``.

    CLI Example:

    .. code-block:: bash

        salt node1 sia.install_node salt://expressware/Dolphin_eXpressWare-5.26.0.sh use_rpms=True
        salt-call sia.install_node /tmp/Dolphin_eXpressWare-5.25.2.sh enforce=True reboot=True
    """
    return _install("node", sia, use_rpms, reboot, enforce, workdir, saltenv, timeout)


def install_frontend(sia, use_rpms=None, reboot=False, enforce=False, workdir=None, saltenv=None, timeout=None):
    """
    Install the Cluster Management Node (frontend) packages
    (``sh <sia> --install-frontend [--use-rpms DIR] [--reboot] [--enforce] --batch``).

    Arguments as for :py:func:`install_node`; ``use_rpms`` must hold ``frontend_RPMS/``.

    CLI Example:

    .. code-block:: bash

        salt frontend sia.install_frontend salt://expressware/Dolphin_eXpressWare-5.26.0.sh
    """
    return _install("frontend", sia, use_rpms, reboot, enforce, workdir, saltenv, timeout)
