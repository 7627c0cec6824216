"""Build once, stage everywhere: the RPMs of a group from its builder, through the master, to the group's nodes.

Salt is reached through the runner's adapter (``expressware_salt.SaltAdapter`` or a stand-in). The RPMs travel in
job returns both ways: up from the builder (``sia.read_rpms``), down to the other nodes (``sia.receive_rpms``). A job
return reaches the master that published the job, whatever is in between: through a syndic the runner's master of
masters gets them, where a ``cp.push_dir`` would land in the syndic master's cache; and no master needs
``file_recv``. Where the master keeps them (its cache directory) is known here only. A failure raises
:class:`StagingError`; the driver decides whether it halts the rollout.
"""

import base64
import binascii
import hashlib
import os
import re
import shutil

#: Bytes of RPM data per publish (down) or per answer (up) when staging.
PAYLOAD = 4 * 1024 * 1024

#: A minion id the master may name a directory after; an RPM file name (``Dolphin-*.rpm``).
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@-]{0,254}\Z")
_RPM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}\.rpm\Z")


class StagingError(RuntimeError):
    """A build, push or copy that did not happen (the message says where and why)."""


class Staging:
    """Builds and stages RPMs with ``salt`` on the master whose cache directory is ``cachedir``."""

    def __init__(self, salt, cachedir, payload=PAYLOAD):
        self.salt, self.cachedir, self.payload = salt, cachedir, payload

    def pushed_to(self, builder, workdir):  # pylint: disable=unused-argument  # the builder's, not the master's
        """Where the master keeps the RPMs built on ``builder`` (read from its ``<workdir>/node_RPMS``)."""
        if not _SAFE_ID.match(builder):
            raise StagingError(f"{builder!r:.200} cannot name a directory of the master's cache")
        return os.path.join(self.cachedir, "expressware", "rpms", builder, "node_RPMS")

    def build(self, builder, sia, workdir, timeout):
        """Build the node RPMs on ``builder`` (one job: clear old RPMs, build); ``(source, rpm names)``."""
        source = self.pushed_to(builder, workdir)
        # What an earlier rollout brought there: RPMs of another version would be staged too and the installer
        # would refuse the mix. The push itself comes with the staging (stage), while the builder is updated: it
        # uses its RPMs where they were built, so its go-ahead need not wait for the push.
        shutil.rmtree(source, ignore_errors=True)
        built = self.salt.call(
            [builder], "sia.build_rpm", [sia], {"clear": True, "workdir": workdir}, timeout=timeout
        ).get(builder, False)
        if built is False:
            raise StagingError(f"{builder} did not answer sia.build_rpm within {timeout} s")
        if not isinstance(built, dict):
            raise StagingError(f"build on {builder} failed: {built}")
        rpms = built.get("node_rpms")
        # The names come from the builder (untrusted): they name files the master writes.
        if not isinstance(rpms, list) or not all(isinstance(n, str) and _RPM_NAME.match(n) for n in rpms):
            raise StagingError(f"build on {builder} named no RPM files the master can keep: {rpms!r:.300}")
        return source, rpms

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
        """The builder's ``node_RPMS/`` to the master (``sia.read_rpms``, ``payload`` bytes an answer), unless it
        has them. They are written beside ``source`` and moved there once every file's SHA-256 is the builder's."""
        if not self.missing(group):
            return  # pushed before an interruption
        builder, source, names = group["builder"], group["source"], list(group["rpms"])
        partial = source + ".part"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        offset, digests = 0, None
        while offset is not None:
            kwarg = {"offset": offset, "size": self.payload, "workdir": group["builder_workdir"]}
            answer = self.salt.call([builder], "sia.read_rpms", [names], kwarg, timeout=timeout).get(builder, False)
            if answer is False:
                raise StagingError(f"{builder} did not push its RPMs to the master (no answer to sia.read_rpms)")
            offset, digests = self._write(builder, partial, names, offset, answer)
        for name in names:
            with open(os.path.join(partial, name), "rb") as handle:
                if hashlib.sha256(handle.read()).hexdigest() != digests.get(name):
                    raise StagingError(f"the master did not receive {name} from {builder} whole (SHA-256)")
        shutil.rmtree(source, ignore_errors=True)
        os.replace(partial, source)

    @staticmethod
    def _write(builder, directory, names, offset, answer):
        """Write one answer of ``sia.read_rpms`` (untrusted: checked first) into ``directory``; ``(next, sha256)``."""
        pieces = answer.get("pieces") if isinstance(answer, dict) else None
        after, digests = (answer.get("next"), answer.get("sha256")) if isinstance(answer, dict) else (None, None)
        if (
            not isinstance(pieces, list)
            or not isinstance(digests, dict)
            or not all(
                isinstance(p, dict) and p.get("name") in names and isinstance(p.get("data"), str) for p in pieces
            )
            or not (after is None or (isinstance(after, int) and not isinstance(after, bool) and after > offset))
        ):
            raise StagingError(f"{builder} could not push its RPMs to the master: {answer!r:.300}")
        try:
            for piece in pieces:
                with open(os.path.join(directory, piece["name"]), "ab" if piece.get("append") else "wb") as handle:
                    handle.write(base64.b64decode(piece["data"], validate=True))
        except (ValueError, binascii.Error) as exc:
            raise StagingError(f"{builder} sent RPM data that is not base64: {exc}") from None
        return after, digests

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
