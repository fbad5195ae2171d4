"""Anchors: where a store sends a checkpoint after each flow run, so a copy lives off the ledger.

``EventStore(..., anchor=...)`` (or ``STATELEDGER_ANCHOR``) takes a folder --
ideally another host's mount, which whoever can write the ledger cannot
write -- or an ``https://`` URL (``http://`` only to this machine: 127.0.0.1,
::1, localhost) that receives the checkpoint's JSON as a POST. A folder gets
one file per checkpoint, ``<ledger_id>-<seq>.json``, written atomically.
Sending may fail (a full disk, a server down); the store logs that loudly
and goes on: an anchor never fails a run or loses an event.
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .checkpoints import Checkpoint
from .errors import CheckpointError

__all__ = ["Anchor", "anchor_of", "default_anchor"]

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_log = logging.getLogger(__name__)


def default_anchor() -> tuple[str | None, str | None]:
    """``(STATELEDGER_ANCHOR, STATELEDGER_ANCHOR_KEY)``: where checkpoints go, and the key signing them."""
    return os.environ.get("STATELEDGER_ANCHOR") or None, os.environ.get("STATELEDGER_ANCHOR_KEY") or None


def anchor_of(anchor: str | os.PathLike[str] | None, anchor_key: Any = None) -> Anchor | None:
    """The store's anchor: ``anchor`` signed with ``anchor_key``, else the environment's (``default_anchor``)."""
    env_anchor, env_key = default_anchor() if anchor is None else (None, None)
    target = anchor if anchor is not None else env_anchor
    if target is None:
        return None
    return Anchor(target, signing_key=anchor_key if anchor_key is not None else env_key)


class Anchor:
    """A checkpoint's destination: a folder or a URL; ``signing_key`` signs what is sent."""

    def __init__(self, target: str | os.PathLike[str], *, signing_key: Any = None, timeout: float = 10.0) -> None:
        self.target = os.fspath(target)
        self.signing_key = signing_key
        self.timeout = timeout
        scheme = urllib.parse.urlsplit(self.target).scheme.lower() if "://" in self.target else ""
        self.url = scheme in ("http", "https")
        if scheme and not self.url:
            raise CheckpointError(f"anchor {self.target!r}: give a folder or an https:// URL, not {scheme}://")
        if scheme == "http" and urllib.parse.urlsplit(self.target).hostname not in _LOOPBACK:
            raise CheckpointError(
                f"anchor {self.target!r}: plain http:// is allowed only to this machine (127.0.0.1); use https:// "
                "so the checkpoint cannot be changed on its way.")

    def __repr__(self) -> str:
        return f"<Anchor {self.target}>"

    def after_run(self, store: Any, run_id: str) -> None:
        """A checkpoint of ``store`` sent after a flow run ended; a failure is logged loudly, never raised."""
        try:
            self.send(store.checkpoint(self.signing_key))
        except Exception as exc:  # the run and its events are committed: never fail them for this
            _log.error("ANCHOR FAILED: no checkpoint of ledger %s reached %s after run %s ended: %s. The events "
                       "are safe in the ledger; take one with `stateledger checkpoint` once the anchor works.",
                       store.path, self.target, run_id, exc)

    def send(self, cp: Checkpoint) -> str:
        """Write or POST ``cp``; return where it went. Raises ``OSError`` (or ``CheckpointError``) on failure."""
        return self._post(cp) if self.url else self._write(cp)

    def _write(self, cp: Checkpoint) -> str:
        if not os.path.isdir(self.target):
            raise CheckpointError(f"anchor folder {self.target} does not exist (is its disk mounted?)", self.target)
        final = os.path.join(self.target, f"{cp.ledger_id}-{cp.seq:012d}.json")
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=self.target)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(cp.to_json() + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return final

    def _post(self, cp: Checkpoint) -> str:
        request = urllib.request.Request(self.target, data=cp.to_json().encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (scheme checked)
                answer.read()
        except urllib.error.HTTPError as exc:
            raise CheckpointError(f"anchor {self.target} answered {exc.code} {exc.reason}", self.target) from None
        return self.target
