"""Update requests the master can verify: who asked, what they may ask for, each request taken once.

Nothing on the master's event bus proves who sent it. A minion's ``event.send``
carries its authenticated ``id``, but the batched form of a minion event
(``event.fire_master`` with ``preload={"events": [...]}``) is fired with data the
minion wrote (no ``id``, or any ``id`` it chose), and ``salt-run event.send`` on the
master looks the same. So an update request is made through a runner, which runs
either on the master (``salt-run``: the operator) or for a minion through
``publish.runner`` (``peer_run``; the master sets ``id`` in the runner's options to
the caller's authenticated id). The runner checks the requester, records the request
where only the master can write (``<cachedir>/expressware/requests/<id>.json``) and
fires ``expressware/update/request`` with the request's id alone. The reactor hands
that id back to a runner, which takes the request from the store exactly once (a
rename: of two takers one wins, a replayed id finds nothing) and only then starts the
rollout. An event without a known request id starts nothing, whatever it says.

Who may ask, and for what: the master itself for anything ``rolling.update`` accepts;
a minion only when ``expressware:reactor:allow`` (master configuration) has an entry
for it, and only within that entry's limits (:func:`check_limits`).

Plain Python (files, no Salt) apart from :func:`fire`; the runner functions stay thin.
"""

import contextlib
import fnmatch
import json
import os
import re
import secrets
import time

#: The event the reactor listens to; its data is ``{"request": <request id>}``.
REQUEST_TAG = "expressware/update/request"
#: The event of a request (or rollout) that was refused.
REFUSED_TAG = "expressware/rolling/refused"
#: Seconds a recorded request stays valid until the reactor takes it.
REQUEST_TTL = 600
#: The requester name of requests made with ``salt-run`` on the master.
MASTER = "master"

_REQUEST_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{16}\Z")

#: Arguments of ``rolling.update`` a minion may use only when its allow entry lists them in ``options``
#: (they change what runs on every node: the installer, the release-notes rules, a reboot, a downgrade).
PRIVILEGED_OPTIONS = ("reboot", "enforce", "sia", "compat", "frontend")
#: The arguments of ``rolling.update`` a minion's request may carry at all (an argument update gains later is the
#: master's until it is reviewed here).
MINION_ARGUMENTS = (
    "tgt",
    "tgt_type",
    "version",
    "sia",
    "reboot",
    "enforce",
    "applications",
    "node_timeout",
    "compat",
    "order",
    "sort",
    "canary",
    "frontend",
    "cluster",
    "build",
    "timeout",
)
#: Target types whose expression is a set of minion ids (an allowed glob covers the ids it matches).
ID_TARGET_TYPES = ("glob", "list")
_GLOB_CHARS = re.compile(r"[*?\[\]]")


class RequestError(Exception):
    """A request that is refused; the message says why."""


# ---------------------------------------------------------------------------
# Who asks
# ---------------------------------------------------------------------------


def caller(opts):
    """The authenticated minion id when a runner runs for a minion (``publish.runner``), else None (``salt-run``,
    the reactor).

    The master answers ``publish.runner`` with its own options and ``id`` set to the calling minion, whose key it
    accepted when the request came in; ``salt-run`` and the reactor keep the master's own id (``<host>_master``), which
    is no accepted minion key.
    """
    minion = opts.get("id")
    if isinstance(minion, str) and minion and "/" not in minion and minion not in (".", ".."):
        if os.path.isfile(os.path.join(opts.get("pki_dir", ""), "minions", minion)):
            return minion
    return None


def claimed_requester(event_data):
    """The ``id`` an event on the bus carries, if any: a claim, never proof (see the module's docstring)."""
    if isinstance(event_data, dict):
        claimed = event_data.get("id")
        if isinstance(claimed, str) and claimed:
            return claimed[:128]
    return None


def describe_claim(claimed):
    return f"{claimed} (claimed, unverified)" if claimed else "unknown (the event names no id)"


# ---------------------------------------------------------------------------
# The allow-list
# ---------------------------------------------------------------------------


def allow_entries(opts):
    """``expressware:reactor:allow`` of the master's configuration: ``{minion id or glob: limits}`` (empty when
    absent). A malformed list is an error, so a typo never widens or silently drops a rule."""
    allow = (((opts.get("expressware") or {}).get("reactor") or {}).get("allow")) or {}
    if not isinstance(allow, dict):
        raise RequestError(
            f"expressware:reactor:allow must be a mapping of minion ids or globs to limits, not {allow!r}"
        )
    for pattern, limits in allow.items():
        if not isinstance(pattern, str) or not pattern:
            raise RequestError(f"expressware:reactor:allow: {pattern!r} is not a minion id or glob")
        check_limits_config(pattern, limits)
    return allow


_LIMIT_KEYS = ("targets", "versions", "clusters", "options", "applications")


def check_limits_config(pattern, limits):
    where = f"expressware:reactor:allow:{pattern}"
    if not isinstance(limits, dict):
        raise RequestError(f"{where} must be a mapping of limits ({', '.join(_LIMIT_KEYS)}), not {limits!r}")
    unknown = sorted(set(limits) - set(_LIMIT_KEYS))
    if unknown:
        raise RequestError(
            f"{where}: unknown limit(s) {', '.join(map(str, unknown))} (known: {', '.join(_LIMIT_KEYS)})"
        )
    for target in limits.get("targets") or []:
        if isinstance(target, str):
            continue
        if (
            not isinstance(target, dict)
            or not isinstance(target.get("tgt"), (str, list))
            or not set(target) <= {"tgt", "tgt_type"}
        ):
            raise RequestError(
                f"{where}:targets: each target is a glob of minion ids or {{tgt: ..., tgt_type: ...}}, not {target!r}"
            )
    for key in ("versions", "clusters", "options", "applications"):
        value = limits.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise RequestError(f"{where}:{key} must be a list of strings, not {value!r}")
    for option in limits.get("options") or []:
        if option not in PRIVILEGED_OPTIONS:
            raise RequestError(f"{where}:options: {option!r} is not one of {', '.join(PRIVILEGED_OPTIONS)}")


def limits_for(minion, allow):
    """The limits of the entries that name ``minion`` (its id, or a glob matching it); [] when none does."""
    return [limits for pattern, limits in allow.items() if fnmatch.fnmatchcase(minion, pattern)]


def _target_allowed(tgt, tgt_type, allowed):
    """Is the target ``tgt`` (``tgt_type``) within the allowed target ``allowed``?

    Equal to it (same expression, same type); or, when the allowed target is a glob (or list) of minion ids and the
    request names minion ids literally (a list, or a glob without wildcards), every id it names matches it. A requested
    expression with wildcards or of another type must be one of the allowed targets exactly: whether one expression
    matches fewer minions than another is not decided from their text.
    """
    if isinstance(allowed, str):
        allowed = {"tgt": allowed, "tgt_type": "glob"}
    allowed_type = allowed.get("tgt_type", "glob")
    if tgt == allowed["tgt"] and tgt_type == allowed_type:
        return True
    if allowed_type not in ID_TARGET_TYPES:
        return False
    if tgt_type == "list":
        ids = tgt if isinstance(tgt, list) else [t.strip() for t in tgt.split(",")]
    elif tgt_type == "glob" and isinstance(tgt, str) and not _GLOB_CHARS.search(tgt):
        ids = [tgt]
    else:
        return False
    patterns = allowed["tgt"] if isinstance(allowed["tgt"], list) else [allowed["tgt"]]
    return bool(ids) and all(isinstance(i, str) and i and any(fnmatch.fnmatchcase(i, p) for p in patterns) for i in ids)


def limit_problems(args, limits):
    """What of the request ``args`` (``rolling.update``'s arguments as checked, see :func:`request_args`) falls outside
    ``limits``: a list of reasons, empty when it is within them."""
    problems = []
    targets = limits.get("targets") or []
    if not any(_target_allowed(args["tgt"], args["tgt_type"], t) for t in targets):
        problems.append(f"target {args['tgt']!r} ({args['tgt_type']}) is not among the allowed targets")
    if not any(fnmatch.fnmatchcase(args["version"], v) for v in limits.get("versions") or []):
        problems.append(f"version {args['version']} is not among the allowed versions")
    clusters = limits.get("clusters") or ["default"]
    if not any(fnmatch.fnmatchcase(args["cluster"], c) for c in clusters):
        problems.append(f"cluster {args['cluster']} is not among the allowed clusters")
    allowed_options = set(limits.get("options") or [])
    for option in PRIVILEGED_OPTIONS:
        if option in allowed_options:
            continue
        value = args["options"].get(option) if option != "sia" else args["sia"]
        if option == "sia":
            if value != default_sia(args["version"]):
                problems.append(
                    f"sia {value!r} is not the default installer ({default_sia(args['version'])}); "
                    "'sia' is not among the allowed options"
                )
        elif value not in (None, False):
            problems.append(f"{option} is not among the allowed options")
    applications = set(limits.get("applications") or [])
    extra = [a for a in args["options"].get("applications") or [] if a not in applications]
    if extra:
        problems.append(f"application(s) {', '.join(extra)} not among the allowed applications")
    return problems


def authorize(minion, args, allow):
    """Refuse (``RequestError``) what ``minion`` may not ask for; None is the master, which may ask for anything."""
    if minion is None:
        return
    requester = minion
    entries = limits_for(requester, allow)
    if not entries:
        raise RequestError(f"{requester} may not request updates (no expressware:reactor:allow entry names it)")
    problems = []
    for limits in entries:
        found = limit_problems(args, limits)
        if not found:
            return
        problems.extend(p for p in found if p not in problems)
    raise RequestError(f"the request of {requester} is beyond its limits: " + "; ".join(problems))


# ---------------------------------------------------------------------------
# The request's arguments
# ---------------------------------------------------------------------------


def default_sia(version):
    return f"salt://expressware/Dolphin_eXpressWare-{version}.sh"


def request_args(kwargs, parameters):
    """The arguments of a request as ``rolling.update`` takes them: the names given must be among ``parameters``
    (update's), ``progress`` is not one (a rollout the reactor runs has no terminal)."""
    if not isinstance(kwargs, dict):
        raise RequestError(f"a request's arguments must be a mapping, not {kwargs!r}")
    unknown = sorted(k for k in kwargs if k not in parameters or k == "progress")
    if unknown:
        raise RequestError(f"rolling.update has no argument {', '.join(unknown)} to request")
    missing = [k for k in ("tgt", "version") if kwargs.get(k) is None]
    if missing:
        raise RequestError(f"a request needs {' and '.join(missing)}")
    return dict(kwargs)


# ---------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------


def new_request_id(now):
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-" + secrets.token_hex(8)


def check_request_id(value):
    if not isinstance(value, str) or not _REQUEST_ID_RE.match(value):
        raise RequestError(f"{value!r} is not a request id")
    return value


class RequestStore:
    """Requests under ``<cachedir>/expressware/requests``: ``<id>.json`` until the reactor takes it, then
    ``taken/<id>.json`` (kept: who asked for what, and when it was taken)."""

    def __init__(self, directory, clock=time.time, ttl=REQUEST_TTL):
        self.directory = directory
        self.clock = clock
        self.ttl = ttl

    def _path(self, request_id, taken=False):
        name = check_request_id(request_id) + ".json"
        return os.path.join(self.directory, "taken", name) if taken else os.path.join(self.directory, name)

    def put(self, requester, args):
        """Record a request; return it (with its new ``id``)."""
        now = self.clock()
        record = {"id": new_request_id(now), "requester": requester, "args": args, "created": now}
        os.makedirs(os.path.join(self.directory, "taken"), mode=0o700, exist_ok=True)
        self._sweep(now)
        path = self._path(record["id"])
        tmp = path + ".tmp"
        # Written beside and renamed into place: a taker never sees half a request.
        with open(tmp, "x", encoding="utf-8") as handle:
            handle.write(json.dumps(record, separators=(",", ":")))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return record

    def take(self, request_id):
        """Take the request ``request_id`` out of the store: its record, once. Every later take of the same id, and a
        take of an id never recorded or recorded more than ``ttl`` seconds ago, raises ``RequestError``."""
        request_id = check_request_id(request_id)
        taken = self._path(request_id, taken=True)
        os.makedirs(os.path.dirname(taken), mode=0o700, exist_ok=True)
        try:
            # rename(2) is atomic: of two takers (a replayed event in another reactor thread) exactly one wins.
            os.rename(self._path(request_id), taken)
        except FileNotFoundError:
            if os.path.exists(taken):
                if (_read(taken) or {}).get("expired"):
                    raise RequestError(f"request {request_id} expired (not taken within {self.ttl} s)") from None
                raise RequestError(f"request {request_id} was already taken (a replayed request)") from None
            raise RequestError(f"no request {request_id} was recorded (salt-run rolling.request records one)") from None
        with open(taken, encoding="utf-8") as handle:
            record = json.load(handle)
        record["taken"] = self.clock()
        age = record["taken"] - record["created"]
        if age > self.ttl:
            record["expired"] = True
        with contextlib.suppress(OSError):
            with open(taken, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(record, separators=(",", ":")))
        if record.get("expired"):
            raise RequestError(
                f"request {request_id} expired: recorded {round(age)} s ago (at most {self.ttl} s); "
                "is the reactor configured for " + REQUEST_TAG + "?"
            )
        return record

    def _sweep(self, now):
        """Move requests nobody took within ``ttl`` (no reactor, a lost event) out of the pending ones."""
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if not _REQUEST_ID_RE.match(name[: -len(".json")]) or not name.endswith(".json"):
                continue
            record = _read(path)
            if record is None or now - record.get("created", now) <= self.ttl:
                continue
            with contextlib.suppress(FileNotFoundError):  # a taker was quicker
                os.rename(path, self._path(record["id"], taken=True))
                record["expired"] = True
                with open(self._path(record["id"], taken=True), "w", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, separators=(",", ":")))

    def get(self, request_id):
        """The request, pending or taken (``taken`` set), or None."""
        for taken in (False, True):
            try:
                with open(self._path(request_id, taken=taken), encoding="utf-8") as handle:
                    return json.load(handle)
            except FileNotFoundError:
                continue
        return None


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None


def request_store(cachedir):
    """The update requests of the master whose cache is ``cachedir``."""
    return RequestStore(os.path.join(cachedir, "expressware", "requests"))


def reactor_handles(reactor_config, tag=REQUEST_TAG):
    """Does the master's ``reactor`` configuration react to ``tag``?"""
    for entry in reactor_config or []:
        if isinstance(entry, dict) and any(isinstance(t, str) and fnmatch.fnmatchcase(tag, t) for t in entry):
            return True
    return False


# ---------------------------------------------------------------------------
# The two runner functions (rolling.request, rolling.take_request), as plain code
# ---------------------------------------------------------------------------


def make_request(opts, kwargs, parameters, check_args, fire_event=None):
    """``rolling.request``: check who asks and what, record the request, fire its id; the answer for the requester.

    ``parameters``: the argument names of ``rolling.update``; ``check_args(kwargs)``: update's own validation,
    returning the normalised arguments or raising ``RequestError``.
    """
    fire_event = fire_event or (lambda tag, data: fire(opts, tag, data))
    minion = caller(opts)
    requester = minion or MASTER
    try:
        given = request_args({k: v for k, v in kwargs.items() if not k.startswith("__")}, parameters)
        beyond = sorted(set(given) - set(MINION_ARGUMENTS))
        if minion is not None and beyond:
            raise RequestError(f"a minion's request may not carry {', '.join(beyond)}")
        args = check_args(dict(given))
        if args["sia"] is None:
            given["sia"] = args["sia"] = default_sia(args["version"])
        authorize(minion, args, allow_entries(opts))
        if not reactor_handles(opts.get("reactor")):
            raise RequestError(
                f"the master's reactor does not react to {REQUEST_TAG}: nothing would take the request "
                "(configure the reactor, see the README, or run rolling.update)"
            )
        record = request_store(opts["cachedir"]).put(requester, given)
    except RequestError as exc:
        fire_event(REFUSED_TAG, {"requester": requester, "verified": True, "reason": str(exc)})
        return {"status": "refused", "requester": requester, "comment": str(exc), "retcode": 1}
    fire_event(REQUEST_TAG, {"request": record["id"]})
    return {
        "status": "requested",
        "request": record["id"],
        "requester": requester,
        "cluster": args["cluster"],
        "comment": f"the reactor starts the rollout; follow it with salt-run rolling.status cluster={args['cluster']}",
        "retcode": 0,
    }


def take_request(opts, request_id, claimed, start, fire_event=None):
    """``rolling.take_request``, what the reactor calls with an event's request id: take the request once and
    ``start(args)`` its rollout (returning what ``start`` returns); anything else is refused and changes nothing."""
    fire_event = fire_event or (lambda tag, data: fire(opts, tag, data))
    claimed = claimed if isinstance(claimed, str) and claimed else None
    try:
        if caller(opts):
            raise RequestError(f"{caller(opts)} may not take requests (only the master's reactor does)")
        if request_id is None:
            raise RequestError(
                f"the {REQUEST_TAG} event carries no request id (an update is requested with salt-run rolling.request)"
            )
        record = request_store(opts["cachedir"]).take(request_id)
    except RequestError as exc:
        requester = caller(opts) or claimed
        reason = f"request from {requester if caller(opts) else describe_claim(claimed)} refused: {exc}"
        fire_event(
            REFUSED_TAG,
            {
                "requester": requester,
                "verified": bool(caller(opts)),
                "reason": reason,
                "request": request_id[:64] if isinstance(request_id, str) else None,
            },
        )
        return {"status": "refused", "comment": reason, "retcode": 1}
    result = start(dict(record["args"]))
    if isinstance(result, dict):
        result = dict(result, request=record["id"], requester=record["requester"])
    return result


def fire(opts, tag, data):
    """Fire ``data`` on the master's event bus (Salt glue, kept here so the runner blocks stay thin)."""
    import salt.utils.event  # pylint: disable=import-outside-toplevel

    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as event:
        return event.fire_event(data, tag)
