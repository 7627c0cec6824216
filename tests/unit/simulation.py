"""A deterministic simulation of a rolling update (in the spirit of FoundationDB's): the real driver
(``expressware_driver.Driver``) against a simulated cluster behind a fake Salt adapter, on a virtual clock.

One seed fixes everything: the options (a build per group and its staging, or none; a canary pause), how long
each step of a node takes, which events are delayed (and so reordered),
duplicated or dropped, which minions restart in the middle of their update, which calls get no answer, forged
events from other minions; and, with ``crash_at``, the driver is killed right after its ``crash_at``-th save (a
step boundary: its process is gone, nothing more of it runs), then the operator's ``rolling.resume`` follows
(or, when it died in its pre-flight, ``rolling.abort`` and a new ``rolling.update``), until the rollout is done.

The invariants are checked as the simulation runs (:class:`Violation` names the seed and the crash point):
never two members down; no node installed twice; every saved record matches the nodes (a node that is down is
recorded in flight or failed, a node recorded active is on the target); every halt names its cause; a lease
holder has a record; at the end the rollout is done, every node on the target, installed once.
"""

import collections
import copy
import datetime
import heapq
import pickle
import random

from tests.shared_code import load

runner = load("rolling", "_runners")
driver_lib = runner.driver_lib
plan_lib = runner.plan_lib
protocol = runner.protocol

OLD, NEW = "5.25.2", "5.26.0"
GRAINS = {"cpuarch": "x86_64", "os": "Rocky", "osrelease": "9.3", "kernelrelease": "5.14.0-362.el9.x86_64"}
NODE_TIMEOUT = 60


#: Seconds within which the driver learns that a member failed on its own (see :meth:`Cluster.go_down`).
DETECTION = 4.5
#: The simulated master's clock at the start (epoch seconds).
EPOCH = 1_700_000_000


class Violation(AssertionError):
    """An invariant does not hold."""


class Crash(BaseException):
    """The driver's process is killed (nothing of it runs any more: not even a ``finally``'s I/O)."""


class Node:
    def __init__(self, name):
        self.name, self.version, self.active, self.connected, self.down = name, OLD, True, True, False
        self.rpms = False  # node RPMs of the target built or staged in its work directory
        self.current = None  # the state job running (one at a time: Salt's state queue)
        self.queue = []  # state jobs waiting for it
        self.installs = 0
        self.failed_since = None  # taken down by something else than the rollout (an external failure)

    def state(self):
        return {
            "state": "active" if self.active else "inactive",
            "active": self.active,
            "installed": self.version,
            "running": self.version if self.active else None,
            "reasons": [] if self.active else ["services not running: IRM"],
        }


class Job:
    def __init__(self, jid, minion, kwarg):
        self.jid, self.minion, self.gate = jid, minion, kwarg.get("gate")
        self.kwarg = kwarg
        self.listening = False  # at its gate, listening for go/cancel
        self.changing = False  # released (or never gated): it changes the node
        self.lost = False


class Cluster:
    """The nodes, their minions and jobs, the master's bus, on a virtual clock; faults drawn from ``rng``."""

    def __init__(self, rng, names, faults=True):
        self.rng, self.faults = rng, faults
        self.now = 0.0
        self.nodes = {name: Node(name) for name in names}
        self.heap, self.seq, self.jids = [], 0, 0
        self.bus = collections.deque()
        self.store = None  # the records, for the gate checks of prepared jobs (the lease runner's gate_wanted)
        self.live_driver = None

    # -- the clock and the bus ----------------------------------------------------------------------------------

    def at(self, delay, action):
        self.seq += 1
        heapq.heappush(self.heap, (self.now + delay, self.seq, action))

    def emit(self, tag, data, delay=0.0, reliable=False):
        """An event for the master bus, ``delay`` from now: with faults, delayed more (reordered), duplicated
        or dropped."""
        copies = 1
        if self.faults and not reliable:
            roll = self.rng.random()
            copies = 0 if roll < 0.03 else 2 if roll < 0.08 else 1
        # The master stamps an event when it takes it (one minion's events in the order it sent them).
        stamp = datetime.datetime.fromtimestamp(EPOCH + self.now + delay, datetime.timezone.utc).isoformat()
        for _ in range(copies):
            jitter = self.rng.uniform(0, 2.0) if self.faults else 0.0
            self.at(delay + jitter, ("event", tag, dict(data, _stamp=stamp)))

    def advance(self, limit, until_event=False):
        """Run the cluster until ``limit``; the events for the master go to the bus in time order
        (``until_event``: stop at the first one)."""
        while self.heap and self.heap[0][0] <= limit:
            when, _, item = heapq.heappop(self.heap)
            self.now = max(self.now, when)
            if callable(item):
                item()
                continue
            self.bus.append(item[1:])
            if until_event:
                return
        self.now = max(self.now, limit)

    def noise(self):
        """Now and then a forged or foreign event: must change nothing."""
        if self.faults and self.rng.random() < 0.02:
            names = sorted(self.nodes)
            victim, sender = self.rng.choice(names), self.rng.choice(names)
            tag, data = self.rng.choice(
                [
                    (protocol.NODE_ACTIVE, {"id": sender, "data": {"node_state": {"active": True}}}),
                    (protocol.beacon_tag(victim, "active"), {"id": sender}),
                    (protocol.NODE_PHASE, {"data": {"phase": "waiting"}}),
                ]
            )
            # (A node's own word that it is active is not noise: one that failed on its own does not say it.)
            if (tag, data.get("id")) not in (
                (protocol.NODE_ACTIVE, victim),
                (protocol.beacon_tag(victim, "active"), victim),
            ) and not (tag == protocol.NODE_ACTIVE and self.nodes[sender].failed_since is not None):
                self.emit(tag, data, reliable=True)

    # -- invariants ------------------------------------------------------------------------------------------

    def go_down(self, node):
        others = [n.name for n in self.nodes.values() if n.down and n is not node]
        if others:
            raise Violation(f"{node.name} goes down while {', '.join(others)} is down")
        # A member that failed on its own: the driver knows within DETECTION seconds (its beacon's event, delayed
        # on the bus at most 2 s, read at the gate; the go-ahead takes the node down at most 2 s later).
        # Counted from the driver's decision (its go-ahead, or the publish of an ordinary job, which may wait long
        # in the node's state queue: past the decision only the node itself could look again).
        decided = node.current.decided if node.current is not None else self.now
        failed = [
            n.name
            for n in self.nodes.values()
            if n is not node and n.failed_since is not None and decided - n.failed_since > DETECTION
        ]
        if failed:
            raise Violation(f"{node.name} goes down while {', '.join(failed)} is down (failed on its own)")
        node.down, node.active = True, False

    def outage(self, name, length):
        """``name`` fails on its own (its services stop) for ``length`` seconds, unless the rollout has it."""
        node = self.nodes[name]
        if node.down or node.failed_since is not None or node.current is not None or node.installs:
            return  # (a node the rollout has in hand, or updated already: failing it is the rollout's own case)
        node.failed_since, node.active = self.now, False
        self.emit(protocol.beacon_tag(name, "inactive"), {"id": name, "tag": "inactive"}, reliable=True)

        def back():
            if node.failed_since is not None and not node.down:
                node.failed_since, node.active = None, True
                self.emit(protocol.beacon_tag(name, "active"), {"id": name, "tag": "active"}, reliable=True)

        self.at(length, back)

    # -- jobs ------------------------------------------------------------------------------------------------

    def new_jid(self):
        self.jids += 1
        return f"2026{self.jids:016d}"

    def publish(self, minion, fun, kwarg):
        node = self.nodes[minion]
        if not node.connected:
            return None
        jid = self.new_jid()
        if fun == "state.single":
            job = Job(jid, minion, kwarg)
            job.decided = self.now  # an ordinary job: the driver's decision is its publish
            node.queue.append(job)
            self.at(0.05, lambda: self.next_job(node))
        elif fun == "expressware.wait_active":
            self.at(0.1, lambda: self.probe(node, jid, kwarg["timeout"]))
        elif fun == "expressware.node_state":
            # The driver's look at a node in flight longer than it should take (its return may be lost).
            self.emit(protocol.job_return_tag(jid, minion), {"id": minion, "return": node.state()}, 0.1)
        elif fun == "event.fire":
            pass
        return jid

    def next_job(self, node):
        if node.current is not None or not node.queue:
            return
        job = node.current = node.queue.pop(0)
        if node.version == NEW and node.active:
            # Already there: wait_active answers at once and announces it.
            self.emit(protocol.NODE_ACTIVE, {"id": node.name, "data": protocol.node_event(node.state())}, 0.2)
            self.finish(node, job, 0.3, ok=True)
        elif job.gate:

            def ready():
                if node.current is job and not job.lost:
                    job.listening = True
                    self.emit(
                        protocol.NODE_PHASE,
                        {"id": node.name, "data": protocol.phase_event(protocol.READY, NEW, gate=job.gate)},
                    )
                    self.at(10, lambda: self.gate_check(node, job))

            self.at(self.rng.uniform(0.2, 3), ready)
        else:
            self.proceed(node, job)

    def gate_check(self, node, job):
        """The state asks the master whether its gate is still wanted (``expressware_lease.gate_wanted``)."""
        if node.current is not job or not job.listening or job.lost:
            return
        record = self.store.load(job.gate.rpartition(":")[0])
        alive = record is not None and self.live_driver == record["id"]
        wanted, _ = plan_lib.gate_wanted(record, node.name, job.gate, alive) if record else (False, "gone")
        if wanted:
            self.at(10, lambda: self.gate_check(node, job))
        else:
            self.finish(node, job, 0.1, ok=False, comment="Not released (the rollout will not release it)")

    def proceed(self, node, job):
        job.listening, job.changing = False, True
        if job.gate:
            job.decided = self.now  # a prepared job: the driver's decision is its go-ahead
        if job.kwarg.get("use_rpms") and not node.rpms:
            raise Violation(f"{node.name} is installed with --use-rpms but has no RPMs of the target")
        d = [self.rng.uniform(0.1, 2) for _ in range(4)]
        restart = self.faults and self.rng.random() < 0.1

        def step(phase, change=None):
            def act():
                if job.lost or node.current is not job:
                    return
                if change:
                    change()
                self.emit(protocol.NODE_PHASE, {"id": node.name, "data": protocol.phase_event(phase, NEW)})

            return act

        self.at(d[0], step("stopping", lambda: self.go_down(node)))
        self.at(d[0] + d[1], step("installing"))
        if restart:

            def reboot():
                if node.current is not job:
                    return
                job.lost, node.connected = True, False
                node.version, node.installs = NEW, node.installs + 1

            def back():
                node.connected, node.down, node.active, node.current = True, False, True, None
                node.failed_since = None
                self.emit(protocol.minion_start_tag(node.name), {"id": node.name})
                if self.rng.random() < 0.5:
                    self.emit(protocol.beacon_tag(node.name, "active"), {"id": node.name, "tag": "active"})
                self.next_job(node)

            self.at(d[0] + d[1] + d[2], reboot)
            self.at(d[0] + d[1] + d[2] + self.rng.uniform(1, 8), back)
            return
        self.at(d[0] + d[1] + d[2], step("waiting"))

        def up():
            if job.lost or node.current is not job:
                return
            node.version, node.installs, node.down, node.active = NEW, node.installs + 1, False, True
            node.failed_since = None
            self.emit(protocol.NODE_ACTIVE, {"id": node.name, "data": protocol.node_event(node.state())})
            self.finish(node, job, self.rng.uniform(0, 0.5), ok=True)

        self.at(d[0] + d[1] + d[2] + d[3], up)

    def finish(self, node, job, delay, ok, comment="ok"):
        def done():
            if node.current is job:
                node.current = None
                self.emit(
                    protocol.job_return_tag(job.jid, node.name),
                    {
                        "id": node.name,
                        "return": {"expressware_|-x_|-x_|-installed": {"result": ok, "comment": comment}},
                    },
                )
                self.next_job(node)

        self.at(delay, done)

    def probe(self, node, jid, timeout, waited=0.0):
        if node.active or waited >= timeout:
            self.emit(
                protocol.NODE_ACTIVE if node.active else protocol.NODE_INACTIVE,
                {"id": node.name, "data": protocol.node_event(node.state())},
            )
            self.emit(protocol.job_return_tag(jid, node.name), {"id": node.name, "return": node.state()})
        else:
            self.at(1, lambda: self.probe(node, jid, timeout, waited + 1))

    def look(self, minions):
        """An asynchronous ``expressware.node_state`` of ``minions``: each connected one returns (an event)."""
        jid = self.new_jid()
        for name in minions:
            node = self.nodes[name]
            if node.connected:
                self.at(
                    self.rng.uniform(0.01, 0.3),
                    lambda node=node: self.emit(
                        protocol.job_return_tag(jid, node.name), {"id": node.name, "return": node.state()}
                    ),
                )
        return jid

    # -- minion functions, answered at once (a call) ------------------------------------------------------------

    def answer(self, minion, fun, arg, kwarg):
        node = self.nodes[minion]
        if not node.connected or (self.faults and self.rng.random() < 0.01):
            return False
        if fun == "test.ping":
            return True
        if fun == "expressware.node_state":
            return node.state()
        if fun == "expressware.preflight":
            action = "none" if node.version == NEW else "install"
            return {
                "grains": GRAINS,
                "workdir": "/var/cache/expressware",
                "node_state": node.state(),
                "installed": node.version,
                "decision": {"action": action, "reason": "sim"},
                "sia": {},
            }
        if fun == "event.fire":
            data, tag = arg
            job = node.current
            if job is not None and job.listening:
                if protocol.is_go(tag, data, job.gate):
                    self.proceed(node, job)
                elif protocol.is_cancel(tag, data, job.gate):
                    job.listening = False
                    self.finish(node, job, 0.1, ok=False, comment="Not released (cancelled)")
            return True
        if fun == "saltutil.running":
            jobs = ([node.current] if node.current and not node.current.lost else []) + node.queue
            return [
                {
                    "fun": "state.single",
                    "jid": j.jid,
                    "arg": ["expressware.installed", NEW, dict(j.kwarg, __kwarg__=True)],
                }
                for j in jobs
            ]
        if fun == "saltutil.find_job":
            jobs = ([node.current] if node.current and not node.current.lost else []) + node.queue
            found = [j for j in jobs if j.jid == arg[0]]
            return {"fun": "state.single", "jid": found[0].jid} if found else {}
        if fun == "saltutil.kill_job":
            for job in [node.current] + node.queue:
                if job is not None and job.jid == arg[0]:
                    if job is node.current:
                        if job.changing:
                            raise Violation(f"the driver killed {minion}'s job {job.jid} while it changed the node")
                        node.current = None
                        self.at(0.05, lambda: self.next_job(node))
                    else:
                        node.queue.remove(job)
            return True
        raise Violation(f"unexpected call {fun}")


class FakeSalt:
    """The driver's adapter (``expressware_salt.SaltAdapter``'s interface) over the simulated cluster."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.dead = False
        self.fired = []

    def _alive(self):
        if self.dead:
            raise Crash()

    def time(self):
        return EPOCH + self.cluster.now

    def monotonic(self):
        return self.cluster.now

    def call(self, tgt, fun, arg=(), kwarg=None, tgt_type="list", timeout=None):
        self._alive()
        minions = sorted(self.cluster.nodes) if tgt_type == "glob" else list(tgt)
        self.cluster.advance(self.cluster.now + 0.05)  # time passes; the events wait on the bus
        return {m: self.cluster.answer(m, fun, list(arg), kwarg or {}) for m in minions}

    def publish(self, tgt, fun, arg=(), kwarg=None, tgt_type="list"):
        self._alive()
        if fun == "expressware.node_state":  # the health gate's look at the members: answers come as events
            return self.cluster.look(list(tgt))
        (minion,) = tgt
        return self.cluster.publish(minion, fun, kwarg or {})

    def fire_on_minion(self, minion, tag, data, acknowledged=True, timeout=None):
        self._alive()
        if not acknowledged and not self.cluster.nodes[minion].connected:
            return False
        return self.call([minion], "event.fire", [data, tag]).get(minion) is True

    def reachable(self, minion, timeout):
        self._alive()
        deadline = self.cluster.now + timeout
        while self.cluster.now < deadline:
            if self.call([minion], "test.ping").get(minion) is True:
                return True
            self.cluster.advance(min(deadline, self.cluster.now + 1))
        return False

    def fire(self, tag, data):
        self._alive()
        self.fired.append((tag, data))

    def get_event(self, wait):
        self._alive()
        self.cluster.noise()
        if not self.cluster.bus:
            self.cluster.advance(self.cluster.now + wait, until_event=True)
        return self.cluster.bus.popleft() if self.cluster.bus else None


class FakeStaging:
    """Builds and staging (``expressware_staging.Staging``'s interface) on the simulated nodes."""

    def __init__(self, cluster):
        self.cluster = cluster

    def _fails(self, minion):
        return not self.cluster.nodes[minion].connected or (self.cluster.faults and self.cluster.rng.random() < 0.05)

    def build(self, builder, sia, workdir, timeout):
        if self._fails(builder):
            raise runner.driver_lib.staging_lib.StagingError(
                f"{builder} did not answer sia.build_rpm within {timeout} s"
            )
        self.cluster.advance(self.cluster.now + self.cluster.rng.uniform(0.5, 3))
        self.cluster.nodes[builder].rpms = True
        return f"/cache/minions/{builder}/node_RPMS", [f"Dolphin-PX-{NEW}-1.x86_64.rpm"]

    def stage(self, group, timeout):
        if self._fails(group["builder"]):
            raise runner.driver_lib.staging_lib.StagingError(f"{group['builder']} did not push its RPMs to the master")
        self.cluster.advance(self.cluster.now + self.cluster.rng.uniform(0.1, 1))
        for minion in group["nodes"]:
            self.cluster.nodes[minion].rpms = True


class Records:
    """The master's rollout records in memory (``RolloutStore``'s interface), checking every save; the driver
    crashes right after its ``crash_at``-th save."""

    def __init__(self, cluster, crash_at=None):
        self.cluster, self.crash_at = cluster, crash_at
        self.saved, self.saves, self.salt = {}, 0, None
        cluster.store = self

    def save(self, record):
        if self.salt is not None and self.salt.dead:
            raise Crash()
        # As the store keeps it (a copy: the driver goes on changing its own); the log is only ever appended to.
        self.saved[record["id"]] = (pickle.dumps({k: v for k, v in record.items() if k != "log"}), list(record["log"]))
        self.check(record)
        self.saves += 1
        if self.saves == self.crash_at:
            self.salt.dead = True
            self.cluster.live_driver = None
            raise Crash()

    save_node = lambda self, record, minion: self.save(record)  # noqa: E731
    save_changes = lambda self, record, nodes=(), groups=(): self.save(record)  # noqa: E731

    def load(self, rollout_id):
        """The record as saved last (a fresh copy), or None."""
        if rollout_id not in self.saved:
            return None
        data, log = self.saved[rollout_id]
        return dict(pickle.loads(data), log=list(log))

    def abort_requested(self, rollout_id):
        return False

    def clear_abort(self, rollout_id):
        pass

    def check(self, record):
        if record["status"] in (plan_lib.HALTED, plan_lib.ABORTED, plan_lib.REFUSED) and not record["reason"]:
            raise Violation(f"rollout {record['status']} without a cause")
        for name, node in self.cluster.nodes.items():
            entry = record["nodes"].get(name)
            if entry is None:
                continue
            if (
                node.down
                and entry["phase"] not in plan_lib.IN_FLIGHT + (plan_lib.FAILED,)
                and not (
                    # A failed node that resume tries again (it is the walk's next node) may still be rebooting.
                    entry["phase"] in (plan_lib.PENDING, plan_lib.STAGED)
                    and entry["attempts"] > 0
                    and name == next((m for m in record["order"] if record["nodes"][m]["phase"] in plan_lib.TODO), None)
                )
            ):
                raise Violation(f"{name} is down but recorded {entry['phase']}")
            if entry["phase"] == plan_lib.ACTIVE and node.version != NEW:
                raise Violation(f"{name} is recorded active on {NEW} but is on {node.version}")


class Leases:
    def __init__(self):
        self.holders = {}

    def acquire(self, cluster, holder, purpose=None):
        held = self.holders.setdefault(cluster, holder)
        return {"granted": held == holder, "holder": held, "age": 0}

    def release(self, cluster, holder=None):
        if holder is None or self.holders.get(cluster) == holder:
            self.holders.pop(cluster, None)


ARGS = {
    "tgt": "*",
    "tgt_type": "glob",
    "version": NEW,
    "sia": "salt://x.sh",
    "cluster": "default",
    "order": None,
    "sort": "name",
    "timeout": 5,
    "options": {
        "reboot": False,
        "enforce": False,
        "applications": [],
        "node_timeout": NODE_TIMEOUT,
        "compat": None,
        "canary": 0,
        "frontend": None,
        "build": False,
    },
}


def simulate(seed, crash_at=None, nodes=4, rounds=10):
    """One schedule; returns ``(number of saves of the first driver, number of drivers)``. Raises
    :class:`Violation` when an invariant does not hold. Every other seed builds once and stages (else every node
    builds for itself); every third pauses after a canary node."""
    rng = random.Random(seed)
    args = copy.deepcopy(ARGS)
    args["options"].update(build=seed % 2 == 0, canary=1 if seed % 3 == 0 else 0)
    cluster = Cluster(rng, [f"node{i}" for i in range(1, nodes + 1)])
    if seed % 4 == 1:
        # A member fails on its own during the rollout and comes back: no node is disrupted meanwhile.
        victim, start = f"node{rng.randint(1, nodes)}", rng.uniform(2, 40)
        cluster.at(start, lambda: cluster.outage(victim, rng.uniform(1, 30)))
    records, leases = Records(cluster, crash_at), Leases()
    rollout_id, drivers, first_saves, result = f"r{seed}", 0, None, None
    for attempt in range(rounds):
        if attempt == rounds // 2:
            cluster.faults = False  # the network heals: the rollout must then finish
        salt = FakeSalt(cluster)
        records.salt = salt
        driver = driver_lib.Driver(
            salt,
            records,
            leases,
            copy.deepcopy(args),
            staging=FakeStaging(cluster),
            identity={"pid": 1000 + attempt, "host": "master"},
        )
        drivers += 1
        cluster.live_driver = rollout_id
        try:
            record = records.load(rollout_id)
            if record is not None and record["status"] == plan_lib.DONE:
                break  # it crashed right after its last save
            if record is None:
                result = driver.start(rollout_id)
            elif record["status"] in (plan_lib.PREFLIGHT, plan_lib.REFUSED):
                # Died in its pre-flight, or refused by it: nothing touched. The operator aborts it and asks again.
                if any(n.installs or n.down for n in cluster.nodes.values()):
                    raise Violation("a rollout that never started touched a node")
                if record["status"] == plan_lib.PREFLIGHT:
                    if leases.holders.get("default") != driver_lib.holder(rollout_id):
                        raise Violation("a rollout in its pre-flight does not hold the lease")
                    plan_lib.abort(record, salt.time())
                    records.save(record)
                    leases.release("default", driver_lib.holder(rollout_id))
                rollout_id = f"r{seed}-{attempt}"
                result = driver.start(rollout_id)
            else:
                result = driver.resume(records.load(rollout_id), [], alive=False)
        except Crash:
            result = None
        finally:
            if first_saves is None:
                first_saves = records.saves
        if result is not None and result.get("status") == plan_lib.DONE:
            break
    cluster.advance(cluster.now + 60)  # what the last driver left on the nodes ends (prepared jobs check)
    final = records.load(rollout_id)
    if final is None or final["status"] != plan_lib.DONE:
        raise Violation(f"not done after {rounds} drivers: {final and final['status']}: {final and final['reason']}")
    for name, node in cluster.nodes.items():
        if node.version != NEW or node.installs != 1:
            raise Violation(f"{name} is on {node.version}, installed {node.installs} time(s)")
    stray = [n.name for n in cluster.nodes.values() if n.current is not None or n.queue]
    if stray:
        raise Violation(f"jobs left on {', '.join(stray)}")
    return first_saves, drivers


Outcome = collections.namedtuple("Outcome", "schedules crash_points drivers")
