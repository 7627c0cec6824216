"""The arguments of the rolling runner's ``update`` and ``plan``: every one checked before anything is touched,
normalised, with the cluster's default maintenance window from the master configuration; and those of ``report``,
``list`` and ``rollback``. Plain Python apart from Salt's exception class (the checks raise ``SaltInvocationError``
naming the argument)."""

import importlib.util
import os
import sys

from salt.exceptions import SaltInvocationError


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
store = _sibling("expressware_store")
checks = _sibling("expressware_args")
window_lib = _sibling("expressware_window")
health = _sibling("expressware_health")

#: ``cluster_states=unchecked``: the frontend's Network Manager has no notification script; its state is not read.
UNCHECKED = "unchecked"


def update_args(given, config=None):
    """The arguments of ``rolling.update``/``rolling.plan`` as given, checked before anything is touched and
    normalised; ``config``: the master configuration's ``expressware`` section (the cluster's default window)."""
    try:
        version = vendor.check_version(
            given["version"] if isinstance(given["version"], str) else repr(given["version"])
        )
    except ValueError as exc:
        raise SaltInvocationError(f"{exc} (quote it if YAML made it a number)") from exc
    tgt, tgt_type = checks.target(given["tgt"], given["tgt_type"])
    sia = checks.installer(given["sia"])
    for flag in ("reboot", "enforce", "build"):
        checks.flag(given[flag], flag)
    applications = checks.names(given["applications"] or [], "applications", "service names", nonempty=True)
    order = checks.names(given["order"], "order")
    checks.choice(given["sort"], "sort", ("name", "reverse"))
    canary = checks.count(given["canary"], "canary", "nodes (0: no canary)")
    frontend = checks.minion_id(given["frontend"], "frontend")
    cluster_members = checks.members_target(given.get("cluster_members"))
    health_wait = checks.number(given.get("health_wait", 300), "health_wait", 0, checks.WEEK)
    cluster_states = cluster_states_arg(given.get("cluster_states"), frontend)
    parallel = given.get("parallel")
    if parallel is not None and (checks.count(parallel, "parallel", "clusters at once (default: all)") < 1):
        raise SaltInvocationError(f"parallel must be a whole number of clusters >= 1, not {parallel!r}")
    checks.choice(given.get("halt", "cluster"), "halt", ("cluster", "fleet"))
    waves = waves_arg(given.get("waves"))
    if frontend is not None and sia is None:
        raise SaltInvocationError("frontend needs sia")
    try:
        cluster = store.check_name(given["cluster"] or "default", "cluster")
        vendor.validate_compat(given["compat"])
    except ValueError as exc:
        raise SaltInvocationError(str(exc)) from exc
    options = {
        "reboot": given["reboot"],
        "enforce": given["enforce"],
        "applications": applications,
        "node_timeout": checks.seconds(given["node_timeout"], "node_timeout"),
        "compat": given["compat"],
        "canary": canary,
        "frontend": frontend,
        "build": given["build"],
        "progress_every": checks.number(
            given.get("progress_every", window_lib.SAY_EVERY), "progress_every", 1, checks.WEEK
        ),
    }
    options["window"], options["window_tz"] = window_args(given, cluster, config)
    return {
        "tgt": tgt,
        "tgt_type": tgt_type,
        "version": version,
        "sia": sia,
        "cluster": cluster,
        "order": order,
        "sort": given["sort"],
        "timeout": checks.seconds(given["timeout"], "timeout"),
        "options": options,
        "cluster_members": cluster_members,
        "health_wait": health_wait,
        "cluster_states": cluster_states,
        "parallel": parallel,
        "halt": given.get("halt", "cluster"),
        "waves": waves,
    }


def waves_arg(value):
    """``waves``: None, or a list of targets walked in order (each a compound target, or a list of minion ids)."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise SaltInvocationError(
            f"waves must be a list of targets (compound targets or lists of minion ids), not {value!r}"
        )
    return [checks.members_target(wave, f"waves[{number}]") for number, wave in enumerate(value)]


def cluster_states_arg(value, frontend):
    """``cluster_states``: the Network Manager states (reported by ``frontend``) under which a node may be
    disrupted, a list (default ``["UP"]``); None with ``unchecked`` (or without a frontend: nothing reports)."""
    if value == UNCHECKED:
        return None
    try:
        states = list(health.allowed_states(None if value is None else value))
    except health.HealthError as exc:
        raise SaltInvocationError(f"cluster_states: {exc} (or {UNCHECKED})") from exc
    if frontend is None:
        if states != list(health.DEFAULT_ALLOWED):
            raise SaltInvocationError(
                "cluster_states needs frontend (the Cluster Management Node whose Network Manager reports the state)"
            )
        return None
    return states


def window_args(given, cluster, config=None):
    """The window and its zone: as given, else the master configuration's default for ``cluster``; checked."""
    config = config if isinstance(config, dict) else {}
    spec, tz = given.get("window"), given.get("window_tz")
    if spec is None:
        defaults = config.get("window")
        spec = defaults.get(cluster) if isinstance(defaults, dict) else None
    if spec is None:
        if tz is not None:
            raise SaltInvocationError("window_tz needs a window")
        return None, None
    if tz is None:
        tz = config.get("window_tz")
    if tz is not None and not isinstance(tz, str):
        raise SaltInvocationError(f"window_tz must be a time zone name such as Europe/Oslo, not {tz!r}")
    try:
        window_lib.parse(spec, tz)
    except window_lib.WindowError as exc:
        raise SaltInvocationError(str(exc)) from exc
    return spec, tz


def report_target(path, format):  # pylint: disable=redefined-builtin
    """``rolling.report``'s ``path`` (None, or absolute and ending in .html or .svg) and ``format`` (html or svg;
    a path's ending decides); the two, checked."""
    if format is not None:
        checks.choice(format, "format", ("html", "svg"))
    if path is not None:
        if not isinstance(path, str) or not os.path.isabs(path) or not path.endswith((".html", ".svg")):
            raise SaltInvocationError(f"path must be an absolute path ending in .html or .svg, not {path!r}")
        suffix = path.rsplit(".", 1)[1]
        if format is not None and format != suffix:
            raise SaltInvocationError(f"path {path!r} does not end in .{format} (format={format})")
        format = suffix
    format = format or "html"
    return path, format


def list_target(cluster, limit):
    """``rolling.list``'s ``cluster`` (None, or a cluster name) and ``limit`` (a count), checked."""
    limit = checks.count(limit, "limit", "rollouts")
    if cluster is not None:
        try:
            store.check_name(cluster, "cluster")
        except ValueError as exc:
            raise SaltInvocationError(str(exc)) from exc
    return cluster, limit


def rollback_target(rollout, sia, node_timeout, timeout, test):
    """``rolling.rollback``'s arguments, checked: ``rollout`` (required), ``sia``, ``node_timeout`` (None: the
    original's), ``timeout``, ``test``; the first four."""
    if not rollout or not isinstance(rollout, str):
        raise SaltInvocationError(
            "rollout is required: the id of the rollout to roll back (rolling.list)"
            + (f", not {rollout!r}" if rollout is not None else "")
        )
    sia = checks.installer(sia)
    checks.flag(test, "test")
    if node_timeout is not None:
        node_timeout = checks.seconds(node_timeout, "node_timeout")
    return rollout, sia, node_timeout, checks.seconds(timeout, "timeout")
