"""The rolling runner's one door to Salt: publish, call with a bound, fire, read the master bus.

One failure policy for every use: Salt itself failing (the master does not take a publish, the bus is gone)
raises :class:`LostMaster` (the rollout is interrupted, not failed; the caller decides whether that matters);
a minion that does not answer within the bound is ``False`` in the answers and is logged with the bound it hit.

No call blocks without a bound: a synchronous call is a publish (``run_job``) whose returns are collected from
the runner's own listener (opened before anything is published) until every targeted minion answered or the
deadline passed. ``LocalClient.cmd`` is not used: on Salt 3006.29 (pip, Python 3.11) it was seen waiting forever
in ``get_cli_event_returns`` after every minion had returned. Events read while collecting returns are kept, in
order, for :meth:`SaltAdapter.get_event`: nothing the driver waits for is lost.
"""

import collections
import logging
import time

import salt.client
import salt.utils.event

log = logging.getLogger(__name__)

#: Seconds a read of the master bus asked not to wait (``get_event(wait=0)``) waits: long enough to take an event
#: that is there already, and never 0, which Salt reads as "forever".
DRAIN_WAIT = 0.001


class LostMaster(Exception):
    """Salt stopped answering (a publish failed, the bus is gone): the rollout is interrupted, not failed."""


class SaltAdapter:
    """Salt as the driver uses it, on the master whose options are ``opts`` (a context manager)."""

    def __init__(self, opts, default_timeout=60, client=None, listener=None):
        """``client``, ``listener``: a ``LocalClient`` and a master event listener, made on entering if not given."""
        self.opts = opts
        self.default_timeout = default_timeout
        self.client = client
        self.listener = listener
        self.pending = collections.deque()

    def __enter__(self):
        if self.client is None:
            self.client = salt.client.get_local_client(self.opts["conf_file"])
        if self.listener is None:
            # The listener exists before any job is published, so no event is lost.
            self.listener = salt.utils.event.get_event(
                "master", sock_dir=self.opts["sock_dir"], opts=self.opts, listen=True
            )
        return self

    def __exit__(self, *exc):
        for thing in (self.listener, self.client):
            try:
                thing.destroy()
            except Exception:  # pylint: disable=broad-except
                pass

    @staticmethod
    def monotonic():
        return time.monotonic()

    @staticmethod
    def time():
        return time.time()

    # -- jobs ------------------------------------------------------------------

    def _run_job(self, tgt, fun, arg, kwarg, tgt_type):
        try:
            pub = self.client.run_job(
                list(tgt) if isinstance(tgt, (list, tuple, set)) else tgt,
                fun,
                arg=list(arg),
                kwarg=kwarg or {},
                tgt_type=tgt_type,
                listen=False,
            )
        except Exception as exc:  # pylint: disable=broad-except
            raise LostMaster(f"{fun} could not be published: {exc}") from exc
        return pub or {}

    def publish(self, tgt, fun, arg=(), kwarg=None, tgt_type="list"):
        """Publish a job and return at once: its jid, or None when no targeted minion was connected
        to take it (Salt says so with an empty answer)."""
        return self._run_job(tgt, fun, arg, kwarg, tgt_type).get("jid") or None

    def call(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None, find_job=True):
        """Run ``fun`` on the targeted minions: ``{minion: return}``, ``False`` for a minion that did not answer
        (or answered that it could not: Salt's no_return).

        Like ``LocalClient.cmd``, a minion silent after ``timeout`` seconds is asked whether it still runs the
        job (``saltutil.find_job``) and waited for while it does; unlike it, never beyond ``PATIENCE`` times
        ``timeout`` in all. ``find_job=False`` for a function that ends as soon as it runs (``test.ping``,
        ``event.fire``): a minion silent after ``timeout`` is no answer at once. The question would wait up to
        ``GATHER`` seconds more for a minion that is gone: a go-ahead to a stopped minion said "did not answer for
        5 s" after 30."""
        timeout = timeout or self.default_timeout
        pub = self._run_job(tgt, fun, arg, kwarg, tgt_type)
        expected = self._expected(pub, tgt, tgt_type)
        if not pub.get("jid") or (not expected and not self.opts.get("order_masters")):
            return {}
        jid, answers = pub["jid"], {}
        started = time.monotonic()
        hard = started + self.PATIENCE * timeout
        deadline = started + timeout
        if not expected:
            # A master of masters, a target it cannot resolve: see _learn.
            self._learn(jid, expected, answers, started + min(timeout, self.opts.get("syndic_wait", 5)), deadline)
            if not expected:
                return {}
        while True:
            self._collect({jid: (expected, answers)}, deadline)
            silent = [m for m in expected if m not in answers]
            if not silent or not find_job or time.monotonic() >= hard:
                break
            running = self._still_running(jid, silent, answers, min(self.GATHER, hard - time.monotonic()))
            if not running:
                break
            deadline = min(hard, time.monotonic() + timeout)
        silent = [m for m in expected if m not in answers]
        if silent:
            log.warning(
                "%s (job %s): no answer within %s s from %s",
                fun,
                jid,
                round(time.monotonic() - started, 1),
                ", ".join(silent),
            )
        return {minion: answers.get(minion, False) for minion in expected}

    #: A call waits for minions still running its job at most this many times its timeout in all.
    PATIENCE = 4
    #: Seconds to wait for the answers to ``saltutil.find_job``.
    GATHER = 10

    def _still_running(self, jid, silent, answers, wait):
        """Those of ``silent`` that say they still run job ``jid`` (its own returns that come meanwhile count)."""
        try:
            pub = self._run_job(silent, "saltutil.find_job", [jid], None, "list")
        except LostMaster:
            return []
        if not pub.get("jid"):
            return []
        found = {}
        self._collect(
            {jid: (silent, answers), pub["jid"]: (list(pub.get("minions") or []), found)}, time.monotonic() + wait
        )
        return [m for m, job in found.items() if isinstance(job, dict) and job and m not in answers]

    def _expected(self, pub, tgt, tgt_type):
        """The minions that should answer a job just published (``pub``: the master's answer).

        A master of masters (``order_masters``) knows only the minions connected to it: those under a syndic are in
        no ``minions`` it returns. A target that lists them names them all the same; for another target the syndics
        say which of theirs it matched (``syndic/<syndic id>/salt/job/<jid>/new``, read by :meth:`_collect`)."""
        expected = list(pub.get("minions") or [])
        if self.opts.get("order_masters") and tgt_type == "list" and isinstance(tgt, (list, tuple, set)):
            expected += [m for m in tgt if m not in expected]
        return expected

    def _learn(self, jid, expected, answers, settled, deadline):
        """Which minions job ``jid`` reached, on a master of masters for a target it cannot resolve (``expected``
        and ``answers`` filled in). Each syndic says which of its minions the target matched (its forwarded
        ``salt/job/<jid>/new``, as ``syndic/<syndic id>/salt/job/<jid>/new``) within ``syndic_wait`` seconds
        (``settled``). Salt 3006 drops that event on the master of masters (a minion may not fire ``salt/job/*/new``):
        then every minion whose answer comes before ``deadline`` counts, and the call lasts until then."""
        self._collect({jid: (expected, answers)}, deadline, learning=(jid, settled))

    def _collect(self, jobs, deadline, learning=None):
        """Read the bus until ``deadline`` or until every job's expected minions answered; ``jobs``:
        ``{jid: (expected minions, answers)}``, ``answers`` filled in, ``expected`` completed with the minions a
        syndic says a job reached. ``learning``: ``(jid, settled)`` (:meth:`_learn`). Other events are kept for
        :meth:`get_event`."""
        told = set()
        while (
            any(len(answers) < len(expected) for expected, answers in jobs.values())
            or (learning and not told)
            or (learning and time.monotonic() < learning[1])
        ):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            event = self._read(min(remaining, 1))
            if event is None:
                continue
            tag, data = event
            parts = tag.split("/")
            if len(parts) == 6 and parts[0] == "syndic" and parts[2:4] == ["salt", "job"] and parts[5] == "new":
                if parts[4] in jobs and isinstance(data.get("minions"), list):
                    told.add(parts[1])
                    expected = jobs[parts[4]][0]
                    expected += [m for m in data["minions"] if isinstance(m, str) and m not in expected]
                continue
            if len(parts) == 5 and parts[:2] == ["salt", "job"] and parts[3] == "ret" and parts[2] in jobs:
                expected, answers = jobs[parts[2]]
                if learning and parts[2] == learning[0] and not told and parts[4] not in expected:
                    expected.append(parts[4])  # no syndic said which minions: every one that answers counts
                if parts[4] in expected and parts[4] not in answers:
                    answers[parts[4]] = data.get("return") if data.get("out") != "no_return" else False
                    continue
            self.pending.append(event)

    def fire_on_minion(self, minion, tag, data, acknowledged=True, timeout=None):
        """Fire ``tag`` on ``minion``'s own bus; ``acknowledged``: wait (bounded) for the minion's word, True when
        it gave it. Else publish and return at once (True when published)."""
        if acknowledged:
            return self.call([minion], "event.fire", [data, tag], timeout=timeout, find_job=False).get(minion) is True
        try:
            return bool(self.publish([minion], "event.fire", [data, tag]))
        except LostMaster:
            return False

    def reachable(self, minion, timeout):
        """Is the minion connected to the master's publisher right now? Asked until ``timeout`` seconds passed.

        A job published to a minion that has not reconnected yet (after a master restart) would be lost
        without a trace."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            asked = time.monotonic()
            ping = self.call([minion], "test.ping", timeout=min(5, max(1, deadline - asked)), find_job=False)
            if ping.get(minion) is True:
                return True
            if time.monotonic() - asked < 1:
                # Refused at once (not connected yet): give the bus a moment rather than spinning.
                event = self._read(1)
                if event is not None:
                    self.pending.append(event)
        return False

    # -- events ----------------------------------------------------------------

    def fire(self, tag, data):
        """Fire on the master bus (a courtesy to listeners: never fails the rollout)."""
        try:
            self.listener.fire_event(data, tag)
        except Exception:  # pylint: disable=broad-except
            log.warning("could not fire %s", tag, exc_info=True)

    def get_event(self, wait):
        """The next event of the master bus as ``(tag, data)``, waiting ``wait`` seconds at most, or None."""
        if self.pending:
            return self.pending.popleft()
        return self._read(wait)

    def _read(self, wait):
        # Salt's get_event takes a wait of 0 for "forever": a look at what is there already (``wait`` 0, the
        # health gate's catching up before a node is disrupted) waits a millisecond, not the 10 ms it once did,
        # which was most of the gate's own time in every handover.
        try:
            event = self.listener.get_event(wait=wait if wait > 0 else DRAIN_WAIT, full=True, auto_reconnect=True)
        except Exception as exc:  # pylint: disable=broad-except
            raise LostMaster(f"the master's event bus failed: {exc}") from exc
        if not event or not isinstance(event, dict) or "tag" not in event:
            return None
        return event["tag"], event.get("data") if isinstance(event.get("data"), dict) else {}


def match_minions(opts, expr, tgt_type="compound"):
    """The minions ``expr`` matches, as Salt targets them from the master (accepted keys and its cache)."""
    import salt.utils.minions  # pylint: disable=import-outside-toplevel

    found = salt.utils.minions.CkMinions(opts).check_minions(expr, tgt_type)
    return list(found.get("minions", []) if isinstance(found, dict) else found)


def minion_clusters(opts, tgt, tgt_type):
    """``{minion: its expressware:cluster, or None}`` for the minions ``tgt`` matches, from the master's cache: the
    pillar's (the master's word) before the grain's (the minion's)."""
    import salt.utils.minions  # pylint: disable=import-outside-toplevel

    clusters = {}
    for minion in match_minions(opts, tgt, tgt_type):
        try:
            _, grains, pillar = salt.utils.minions.get_minion_data(minion, opts)
        except Exception:  # pylint: disable=broad-except  # no cache: the minion is in the default cluster
            grains = pillar = None
        clusters[minion] = None
        for data in (pillar, grains):
            section = data.get("expressware") if isinstance(data, dict) else None
            if isinstance(section, dict) and section.get("cluster") not in (None, ""):
                clusters[minion] = section["cluster"]
                break
    return clusters


def cluster_members(opts, expr, cluster):
    """The minions the operator names as further members of ``cluster`` (``cluster_members``), plus those whose
    cached grain or pillar ``expressware:cluster`` is ``cluster``: from the master's cache, so a member that is
    down (not answering) is found all the same."""
    members = list(expr) if isinstance(expr, list) else (match_minions(opts, expr) if expr else [])
    try:
        members += match_minions(opts, f"G@expressware:cluster:{cluster} or I@expressware:cluster:{cluster}")
    except Exception:  # pylint: disable=broad-except  # no cache of grains or pillar: only the named ones
        log.debug("expressware:cluster members of %s not resolved", cluster, exc_info=True)
    return sorted(set(members))
