"""Argument checks shared by every entry point (runners, states, execution modules), and the exit status of a refusal.

Each check returns the value (normalised where said) or raises ``SaltInvocationError`` naming the argument, what
it must be and what it was: bad input gets a clear error and changes nothing. Plain Python apart from Salt's
exception class.
"""

import functools

from salt.exceptions import SaltInvocationError

#: Salt's target types (``tgt_type``) a rollout may use.
TGT_TYPES = (
    "glob",
    "pcre",
    "list",
    "grain",
    "grain_pcre",
    "pillar",
    "pillar_pcre",
    "nodegroup",
    "range",
    "compound",
    "ipcidr",
)
WEEK = 7 * 86400


def flag(value, name):
    """A boolean: the string "False" (or "no" quoted on the CLI) would be true."""
    if not isinstance(value, bool):
        raise SaltInvocationError(f"{name} must be True or False, not {value!r}")
    return value


def seconds(value, name, low=1, high=WEEK):
    """A number (int or float, not a bool) of seconds in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise SaltInvocationError(f"{name} must be a number of seconds between {low} and {high}, not {value!r}")
    return value


def number(value, name, low, high):
    """A number of seconds in ``[low, high]``, also given as text (``"0.5"``); returned as a float."""
    if isinstance(value, bool):
        raise SaltInvocationError(f"{name} must be a number of seconds, not {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise SaltInvocationError(f"{name} must be a number of seconds, not {value!r}") from None
    if not low <= result <= high:
        raise SaltInvocationError(f"{name} must be between {low} and {high} seconds, not {value!r}")
    return result


def count(value, name, what):
    """A whole number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SaltInvocationError(f"{name} must be a whole number of {what}, not {value!r}")
    return value


def names(value, name, what="minion ids", nonempty=False):
    """A list of strings (``nonempty``: none of them empty); None stays None."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and (v or not nonempty) for v in value):
        raise SaltInvocationError(f"{name} must be a list of {what}, not {value!r}")
    return value


def minion_id(value, name):
    """One minion id (a non-empty string); None stays None."""
    if value is not None and (not isinstance(value, str) or not value):
        raise SaltInvocationError(f"{name} must be a minion id, not {value!r}")
    return value


def target(tgt, tgt_type):
    """A Salt target and its type; ``(tgt, tgt_type)``, a list of ids given with ``glob`` becomes ``list``."""
    if isinstance(tgt, list):
        if not tgt or not all(isinstance(t, str) and t for t in tgt):
            raise SaltInvocationError(f"tgt must be a target expression or a list of minion ids, not {tgt!r}")
        if tgt_type == "glob":
            tgt_type = "list"
    elif not isinstance(tgt, str) or not tgt.strip() or "\n" in tgt:
        raise SaltInvocationError(f"tgt must be a target expression, not {tgt!r}")
    if tgt_type not in TGT_TYPES:
        raise SaltInvocationError(f"tgt_type must be one of {', '.join(TGT_TYPES)}, not {tgt_type!r}")
    return tgt, tgt_type


def installer(sia):
    """``sia`` of the runner: a ``salt://`` URL or an absolute path (one line); None stays None."""
    if sia is not None and (
        not isinstance(sia, str) or not (sia.startswith("salt://") or sia.startswith("/")) or "\n" in sia
    ):
        raise SaltInvocationError(f"sia must be a salt:// URL or an absolute path, not {sia!r}")
    return sia


def members_target(value, name="cluster_members"):
    """Further members of a cluster: a compound target (one line) or a list of minion ids; None stays None."""
    if value is None:
        return None
    if isinstance(value, list):
        return names(value, name, nonempty=True) or None
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise SaltInvocationError(f"{name} must be a compound target or a list of minion ids, not {value!r}")
    return value


def choice(value, name, choices):
    if value not in choices:
        raise SaltInvocationError(f"{name} must be " + " or ".join(repr(c) for c in choices) + f", not {value!r}")
    return value


def refusing(func):
    """Decorator for runner functions: bad input gets a clear refusal and a non-zero exit.

    Salt's runner client prints a raised ``SaltInvocationError`` as usage text and
    ``salt-run`` exits 0 (the exception is also a ``TypeError``); a returned
    ``retcode`` is what sets the exit status.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SaltInvocationError as exc:
            return {"status": "refused", "comment": str(exc), "retcode": 1}

    return wrapper
