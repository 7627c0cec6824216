"""Build once, stage everywhere: the RPMs of a group from its builder, through the master, to the group's nodes.

Salt is reached through the runner's adapter (``expressware_salt.SaltAdapter`` or a stand-in); the master's cache
layout (where ``cp.push_dir`` puts a minion's files) is known here only. A failure raises :class:`StagingError`;
the driver decides whether it halts the rollout.
"""

import base64
import hashlib
import os
import shutil

#: Bytes of RPM data per publish when staging.
PAYLOAD = 4 * 1024 * 1024


class StagingError(RuntimeError):
    """A build, push or copy that did not happen (the message says where and why)."""


class Staging:
    """Builds and stages RPMs with ``salt`` on the master whose cache directory is ``cachedir``."""

    def __init__(self, salt, cachedir, payload=PAYLOAD):
        self.salt, self.cachedir, self.payload = salt, cachedir, payload

    def pushed_to(self, builder, workdir):
        """Where ``cp.push_dir`` of the builder's ``<workdir>/node_RPMS`` lands on the master."""
        return os.path.join(self.cachedir, "minions", builder, "files", workdir.lstrip("/"), "node_RPMS")

    def build(self, builder, sia, workdir, timeout):
        """Build the node RPMs on ``builder`` (one job: clear old RPMs, build); ``(source, rpm names)``."""
        source = self.pushed_to(builder, workdir)
        # cp.push keeps what earlier rollouts pushed there; RPMs of another version would be staged too and
        # the installer would refuse the mix. The push itself comes with the staging (stage), while the builder
        # is updated: it uses its RPMs where they were built, so its go-ahead need not wait for the push.
        shutil.rmtree(source, ignore_errors=True)
        built = self.salt.call(
            [builder], "sia.build_rpm", [sia], {"clear": True, "workdir": workdir}, timeout=timeout
        ).get(builder, False)
        if built is False:
            raise StagingError(f"{builder} did not answer sia.build_rpm within {timeout} s")
        if not isinstance(built, dict):
            raise StagingError(f"build on {builder} failed: {built}")
        return source, built["node_rpms"]

    def missing(self, group):
        return [name for name in group["rpms"] if not os.path.isfile(os.path.join(group["source"], name))]

    def stage(self, group, timeout):
        """Bring the group's RPMs from its builder to the master (unless they are there already), then to the
        group's other nodes."""
        receivers = [m for m in group["nodes"] if m != group["builder"]]
        if receivers:
            self.push(group, timeout)
            self.send(receivers, group["source"], group["rpms"])

    def push(self, group, timeout):
        """The builder's ``node_RPMS/`` to the master (``cp.push_dir``), unless it has them."""
        if not self.missing(group):
            return  # pushed before an interruption
        builder = group["builder"]
        pushed = self.salt.call(
            [builder], "cp.push_dir", [os.path.join(group["builder_workdir"], "node_RPMS")], timeout=timeout
        ).get(builder, False)
        if pushed is False:
            # No answer, or cp.push_dir itself said False (Salt answers both the same way).
            raise StagingError(
                f"{builder} did not push its RPMs to the master (no answer, or cp.push_dir failed: file_recv?)"
            )
        if pushed is not True:
            raise StagingError(f"{builder} could not push its RPMs to the master (file_recv?): {pushed}")
        missing = self.missing(group)
        if missing:
            raise StagingError(f"the master did not receive {', '.join(missing)} from {builder}")

    def send(self, minions, source, names):
        """Copy the RPMs ``names`` of ``source`` into every minion's ``<workdir>/node_RPMS`` (``sia.receive_rpms``):
        one publish per ``payload`` bytes reaches all of them in parallel, whatever their work directories;
        then compare the SHA-256 digests."""
        expected, batches, batch, size = {}, [], [], 0
        for name in names:
            with open(os.path.join(source, name), "rb") as handle:
                content = handle.read()
            expected[name] = hashlib.sha256(content).hexdigest()
            for offset in range(0, max(len(content), 1), self.payload):
                piece = content[offset : offset + self.payload]
                if batch and size + len(piece) > self.payload:
                    batches.append(batch)
                    batch, size = [], 0
                batch.append({"name": name, "data": base64.b64encode(piece).decode(), "append": offset > 0})
                size += len(piece)
        batches.append(batch)
        ret = {}
        for number, pieces in enumerate(batches):
            ret = self.salt.call(minions, "sia.receive_rpms", kwarg={"files": pieces, "clear": number == 0})
            failed = {m: ret.get(m) for m in minions if not isinstance(ret.get(m), dict)}
            if failed:
                raise StagingError(
                    "copying the RPMs failed on "
                    + ", ".join(f"{m}: {'no answer' if a in (False, None) else a}" for m, a in sorted(failed.items()))
                )
        wrong = sorted(m for m in minions if ret[m].get("sha256") != expected)
        if wrong:
            raise StagingError(f"the RPMs on {', '.join(wrong)} differ from the built ones (SHA-256)")
