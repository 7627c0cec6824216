"""The floor under a handover's last part: one Salt job to a minion, from its publish to its effect on the minion.

A prepared node's go-ahead is one publish of ``event.fire`` (``expressware_gates.Gates.go``); the job waiting at the
node's gate starts on the event it fires on the minion's bus. This measures that path alone, with nothing else
running: a master-side ``LocalClient`` publishes ``event.fire`` to one minion, and a listener on that minion's own
event bus (its IPC socket, on this machine) notes when the event arrives. What it costs is Salt's: the master's
publish, the minion's receipt, and the new job process the minion starts for every job (it builds its loaders
again there) before ``event.fire`` runs.
"""

import statistics
import time

import salt.client
import salt.config
import salt.utils.event


def measure(master_conf_dir, minion_conf_file, minion, count=9, pause=0.5):
    """Publish ``event.fire`` to ``minion`` ``count`` times, one at a time; the seconds from each publish to its
    event on the minion's bus, as ``{"samples": [...], "median": s, "max": s, "publish_call": median s}``."""
    mopts = salt.config.client_config(f"{master_conf_dir}/master")
    minion_opts = salt.config.minion_config(minion_conf_file)
    client = salt.client.LocalClient(mopts=mopts)
    samples, calls = [], []
    with salt.utils.event.get_event("minion", opts=minion_opts, listen=True) as bus:
        client.cmd(minion, "test.ping", timeout=30)  # the client's channel open, the minion answering
        for number in range(count):
            tag = f"bench/go-floor/{number}"
            started = time.monotonic()
            client.run_job(minion, "event.fire", [{"n": number}, tag], listen=False)
            calls.append(time.monotonic() - started)
            deadline = started + 30
            while time.monotonic() < deadline:
                if bus.get_event(wait=max(0.01, deadline - time.monotonic()), tag=tag, full=True):
                    samples.append(time.monotonic() - started)
                    break
            time.sleep(pause)  # the job's return and its process's end out of the next one's way
    client.destroy()
    return {
        "samples": samples,
        "count": count,
        "median": statistics.median(samples) if samples else None,
        "max": max(samples) if samples else None,
        "publish_call": statistics.median(calls),
    }
