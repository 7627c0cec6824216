"""The demo's throwaway Salt cluster: one ``salt-master`` and a ``salt-minion`` per simulated node, on loopback.

Configurations that keep every daemon's state in the work directory, the daemons each in its own process group
(stopped together, whatever happens), and the wait for the minions to answer. Used by ``expressware-demo`` and by
the benchmarks (``bench/run.py``).
"""

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from expressware_sim import service_provider_config


def say(text):
    """Demo narration on stdout (the runner's progress goes to stderr); flushed so both interleave right."""
    print(f"[demo] {text}", flush=True)


def salt_bin(name):
    """A Salt executable of the interpreter running us: the venv's Salt, not whatever is first on PATH."""
    return os.path.join(os.path.dirname(sys.executable), name)


def free_ports(count):
    """Ports the kernel hands out for port 0; the sockets stay open until all are chosen, so they differ."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _daemon_dirs(base, name):
    """Per-daemon state directories, all under ``base`` so nothing touches /etc/salt or /var."""
    return {
        "root_dir": str(base),
        "pki_dir": str(base / "pki"),
        "cachedir": str(base / "cache"),
        "sock_dir": str(base / "sock"),
        "pidfile": str(base / "run" / f"{name}.pid"),
        "log_file": str(base / "log" / f"{name}.log"),
        "key_logfile": str(base / "log" / "key.log"),
        "log_level_logfile": "info",
        "user": getpass.getuser(),
    }


def master_config(work, publish_port, ret_port):
    """The master's configuration: loopback only, auto-accepting, file roots in the work directory."""
    work = Path(work)
    conf = _daemon_dirs(work / "salt" / "master", "master")
    conf.update(
        {
            "interface": "127.0.0.1",
            "publish_port": publish_port,
            "ret_port": ret_port,
            "auto_accept": True,
            "file_roots": {"base": [str(work / "srv" / "salt")]},
            "pillar_roots": {"base": [str(work / "srv" / "pillar")]},
            "file_recv": True,
            # The state and the runner take the update lease through publish.runner.
            "peer_run": {".*": ["expressware_lease.*"]},
            "timeout": 30,
        }
    )
    return conf


def minion_config(work, minion_id, node_config, publish_port, ret_port):
    """A minion's configuration: its own state dirs, plus the ``expressware:`` keys of its simulated node."""
    conf = _daemon_dirs(Path(work) / "salt" / minion_id, "minion")
    conf.update(
        {
            "id": minion_id,
            "master": "127.0.0.1",
            "master_port": ret_port,
            "publish_port": publish_port,
            "acceptance_wait_time": 1,  # retry authentication quickly while the master starts
            "loop_interval": 1,
        }
    )
    conf.update(node_config)
    conf.update(service_provider_config())  # service.start/stop drive the simulated application
    return conf


def write_config(confdir, filename, data):
    """Write ``confdir/filename`` as YAML and return ``confdir`` (what ``-c`` of the Salt commands takes)."""
    confdir = Path(confdir)
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / filename).write_text(yaml.safe_dump(data, default_flow_style=False), encoding="utf-8")
    return str(confdir)


class Daemons:
    """The Salt daemons started by the demo, each the leader of its own process group.

    A process group per daemon lets :meth:`stop_all` reach the worker processes a
    master or minion forks, and keeps Ctrl-C in the terminal away from the daemons
    so that the demo, not the terminal, decides the order of shutdown.
    """

    def __init__(self, logdir):
        self.logdir = Path(logdir)
        self.procs = {}  # name -> Popen

    def start(self, name, argv):
        self.logdir.mkdir(parents=True, exist_ok=True)
        # The daemons' own console output goes to a file: the terminal is for the job.
        with open(self.logdir / f"{name}.console.log", "ab") as out:
            self.procs[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def dead(self):
        """Names of daemons that already exited (a wrong config shows up here first)."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def stop_all(self, grace=15.0):
        """Stop the minions, then the master (a minion that loses its master first starts reconnecting)."""
        self._stop([name for name in self.procs if name != "master"], grace)
        self._stop([name for name in self.procs if name == "master"], grace)
        self.procs.clear()

    def _stop(self, names, grace):
        """SIGTERM the groups of ``names``, wait up to ``grace`` s for them to empty, SIGKILL what is left."""
        procs = {name: self.procs[name] for name in names}
        for proc in procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # Forked workers can outlive their leader for a moment; wait for the groups to empty.
        while time.monotonic() < deadline and any(_signal_group(p.pid, 0) for p in procs.values()):
            time.sleep(0.2)
        for name, proc in procs.items():
            if _signal_group(proc.pid, 0) or proc.poll() is None:
                say(f"{name} did not stop in {grace:.0f} s; killing it")
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()

    def log_tails(self, lines=15):
        """The last lines of every daemon's console and log file, for a failure report."""
        for path in sorted(self.logdir.parent.glob("salt/*/log/*.log")) + sorted(self.logdir.glob("*.log")):
            text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            if text:
                print(f"----- {path} (last {len(text)} lines)", file=sys.stderr)
                print("\n".join(text), file=sys.stderr)


def _signal_group(pgid, sig):
    """Send ``sig`` to a process group (0: just probe); False if the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def salt_json(conf, tgt, fun, *args, timeout=30):
    """Run ``salt TGT FUN ARGS --out=json --static``; return (exit status, parsed output or None)."""
    argv = [salt_bin("salt"), "-c", conf, "--out=json", "--static", f"--timeout={timeout}", tgt, fun, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, None


def wait_for_minions(conf, ids, daemons, timeout):
    """Poll ``test.ping`` until every minion answers; False on timeout or when a daemon died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemons.dead():
            say(f"daemon(s) exited early: {', '.join(daemons.dead())}")
            return False
        _, out = salt_json(conf, "*", "test.ping", timeout=5)
        ready = sorted(i for i, ok in (out or {}).items() if ok is True)
        if set(ready) >= set(ids):
            return True
        left = max(0, deadline - time.monotonic())
        say(f"waiting for minions: {len(ready)}/{len(ids)} answer ({left:.0f} s left)")
        time.sleep(2)
    return False
