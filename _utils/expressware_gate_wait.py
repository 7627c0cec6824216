"""A prepared job waiting at its gate: the node's side of the gates (the runner's is ``expressware_gates``).

The state ``expressware.installed`` with ``gate`` announces this node ready (everything checked, nothing changed)
and waits on the minion's event bus for ``expressware/gate/go`` naming its gate. The ``rolling`` runner prepares
the next node this way while the current one is still in flight, and releases it the moment the current one is back:
the next node's checks, installer fetch and state start-up are off the critical path. Salt glue: the state's
``__salt__`` and ``__opts__`` are passed in.
"""

import concurrent.futures
import contextvars
import importlib.util
import os
import sys
import time

import salt.utils.event


def _sibling(name):
    """Another module of this directory: the same module object the loader modules' ``_shared()`` gives."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[key])
    return sys.modules[key]


protocol = _sibling("expressware_protocol")


def await_gate(gate, timeout, salt_funcs, opts, announce_ready):
    """Call ``announce_ready()`` and wait on the minion's event bus for ``expressware/gate/go`` naming ``gate``;
    return None when released, else why not (cancelled, ``timeout`` seconds passed, or the rollout will not
    release it any more). ``salt_funcs``, ``opts``: the state's ``__salt__`` and ``__opts__``.

    The listener exists before ``ready`` is announced, so a go cannot be missed.
    Every ``expressware:gate_check_interval`` seconds (default 10; 0: never) the
    master is asked, in a thread so that a go is not delayed, whether the rollout
    still means to release this job: one whose ``salt-run`` was killed would
    otherwise hold the node's state queue until ``timeout``.
    """
    minion = os.getppid()  # the salt-minion this job process runs under
    check_every = salt_funcs["config.get"]("expressware:gate_check_interval", 10)
    if isinstance(check_every, bool) or not isinstance(check_every, (int, float)) or check_every < 0:
        check_every = 10
    # Not a context manager: leaving it must not wait for a question still out.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return _wait_at_gate(gate, timeout, minion, check_every, pool, salt_funcs, opts, announce_ready)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def gate_unwanted(salt_funcs, gate):
    """Why the ``rolling`` runner will not release the job at ``gate`` any more (its
    ``salt-run`` was killed, the rollout stopped, another job took its place), as the
    master answers ``expressware_lease.gate_wanted``; None when it still will, or when
    there is no clear answer (master restarting, no ``peer_run``): then the job waits on."""
    try:
        answer = salt_funcs["publish.runner"]("expressware_lease.gate_wanted", arg=[f"gate={gate}"], timeout=10)
    except Exception:  # pylint: disable=broad-except
        return None
    if isinstance(answer, dict) and answer.get("wanted") is False:
        return str(answer.get("reason") or "not wanted")
    return None


def _wait_at_gate(gate, timeout, minion, check_every, pool, salt_funcs, opts, announce_ready):
    with salt.utils.event.get_event("minion", opts=opts, listen=True) as bus:
        announce_ready()
        deadline = time.monotonic() + timeout
        check, next_check = None, time.monotonic() + check_every
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"not released within {timeout} s"
            if os.getppid() != minion:
                # Its salt-minion stopped (a stopping minion leaves its jobs running):
                # no go can come through it, and an orphan waiting here would hold the
                # node's state queue when the minion is back.
                return "its salt-minion stopped"
            if check_every and check is None and time.monotonic() >= next_check:
                check = pool.submit(contextvars.copy_context().run, gate_unwanted, salt_funcs, gate)  # loader context
            if check is not None and check.done():
                unwanted, check, next_check = check.result(), None, time.monotonic() + check_every
                if unwanted:
                    # A go fired just before the runner let go of the gate is on the bus already.
                    while (event := bus.get_event(wait=0.2, tag=protocol.GATE_GO, full=True)) is not None:
                        if protocol.is_go(event["tag"], event.get("data"), gate):
                            return None
                    return f"the rollout will not release it: {unwanted}"
            event = bus.get_event(
                wait=min(remaining, 0.2 if check else 1), tag=protocol.GATE, full=True, auto_reconnect=True
            )
            if not event:
                continue
            data = event.get("data") or {}
            if protocol.is_go(event["tag"], data, gate):
                return None
            if protocol.is_cancel(event["tag"], data, gate):
                return "cancelled: " + str(data.get("reason") or "by the runner")
