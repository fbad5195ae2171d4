"""Checkpoints: a small signed digest of the whole ledger up to a seq, meant to be kept elsewhere.

A ledger cannot prove its own innocence: whoever can write the file can
rewrite an event and recompute every hash after it. A *checkpoint* (as a
Certificate Transparency signed tree head, or a QLDB digest) is what lets a
copy kept off the ledger prove it::

    root_0 = ""            root_i = sha256_hex(root_{i-1} + hash_i)   (events in seq order)
    Checkpoint(ledger_id, seq, count, root, at, signature)

``seq`` is the last event sealed, ``count`` how many events have a seq up to
it, ``signature`` an Ed25519 signature (hex) of ``payload()`` when a key was
given. ``verify(checkpoints=...)`` recomputes the root: any event before
``seq`` deleted, changed, renumbered or rewritten consistently changes it.

``take`` is incremental: the ledger records each checkpoint too, and the next
one folds only the hashes after the last recorded one. Keys are PEM files
(``generate_keys``: the private key mode 0600, its public key at PATH.pub);
``cryptography`` is imported only when a key is used.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, replace
from typing import Any

from . import codec
from .errors import CheckpointError, LedgerError
from .mapper import CheckpointRow
from .protocol import Recorder

__all__ = ["Checkpoint", "take", "generate_keys", "private_key", "public_key", "read_checkpoint"]

#: The ``format`` field of a checkpoint's JSON.
FORMAT = "stateledger-checkpoint/1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The ledger ``ledger_id`` sealed up to ``seq``: ``count`` events whose hashes fold into ``root``."""

    ledger_id: str
    seq: int
    count: int
    root: str
    at: datetime.datetime
    signature: str | None = None

    def payload(self) -> bytes:
        """What the signature signs: canonical JSON of every field but the signature."""
        return json.dumps({"format": FORMAT, "ledger_id": self.ledger_id, "seq": self.seq, "count": self.count,
                           "root": self.root, "at": codec.iso(self.at)}, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True).encode()

    def to_json(self) -> str:
        """The checkpoint as one JSON document (what ``from_json`` reads back)."""
        return json.dumps({"format": FORMAT, "ledger_id": self.ledger_id, "seq": self.seq, "count": self.count,
                           "root": self.root, "at": codec.iso(self.at), "signature": self.signature}, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "the checkpoint") -> "Checkpoint":
        """A checkpoint from ``to_json``'s output; ``CheckpointError`` (naming ``source``) if it is not one."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"no \"format\": \"{FORMAT}\"")
            seq, count, root, ledger_id = data["seq"], data["count"], data["root"], data["ledger_id"]
            signature = data.get("signature")
            if not (type(seq) is int and type(count) is int and 0 <= count <= max(seq, 0)):
                raise ValueError("seq and count must be whole numbers, count <= seq")
            if not (isinstance(ledger_id, str) and isinstance(root, str) and (root == "") == (count == 0)):
                raise ValueError("ledger_id and root must be text")
            if signature is not None and not isinstance(signature, str):
                raise ValueError("signature must be hex text or null")
            at = datetime.datetime.fromisoformat(data["at"])
            if at.tzinfo is None:
                raise ValueError("at must be a UTC time")
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{source} is not a stateledger checkpoint ({exc}); give a file written by "
                "`stateledger checkpoint` or Checkpoint.to_json().", source) from None
        return cls(ledger_id, seq, count, root, at, signature)

    def signed(self, key: Any) -> "Checkpoint":
        """This checkpoint signed with ``key`` (an Ed25519 private key, or the path of its PEM file)."""
        return replace(self, signature=private_key(key).sign(self.payload()).hex())

    def signature_ok(self, key: Any) -> bool:
        """Whether ``signature`` is this checkpoint's, made with the private half of ``key``."""
        from cryptography.exceptions import InvalidSignature

        if not self.signature:
            return False
        try:
            public_key(key).verify(bytes.fromhex(self.signature), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def row(self) -> CheckpointRow:
        """The checkpoint as the ledger records it."""
        return CheckpointRow(self.seq, self.count, self.root, codec.iso(self.at), self.signature)


def take(recorder: Recorder, signing_key: Any = None) -> Checkpoint:
    """Seal the ledger as it is now, record the checkpoint in it, and return it.

    Folds only the hashes after the last checkpoint the ledger recorded (a
    checkpoint costs the events since the previous one). A schema-1 ledger is
    upgraded first (it gets its ``ledger_id``).
    """
    key = private_key(signing_key) if signing_key is not None else None  # a bad key fails before any write
    if recorder.ledger_id() is None:
        recorder.add_checkpoint(CheckpointRow(0, 0, "", codec.iso(codec.utcnow()), None))  # upgrades
    with recorder.snapshot():
        ledger_id = recorder.ledger_id()
        recorded = recorder.checkpoints()
        base = recorded[-1] if recorded else CheckpointRow(0, 0, "", "", None)
        last = recorder.max_seq()
        if last < base.seq:  # sealing now would vouch for events that are gone
            raise LedgerError(
                f"Cannot take a checkpoint of ledger {recorder.path}: it ends at seq {last} but the checkpoint "
                f"it recorded last covers up to seq {base.seq}. Events were deleted or lost (a -wal file?); "
                "run `stateledger verify` and restore the ledger from a copy.", recorder.path)
        seq, count, root = base.seq, base.count, base.root
        sha256 = hashlib.sha256  # mapper.fold_root, inlined: one pass, constant memory
        for seq, h in recorder.hashes(base.seq):
            root = sha256((root + h).encode()).hexdigest()
            count += 1
    assert ledger_id is not None
    cp = Checkpoint(ledger_id, seq, count, root, codec.utcnow())
    if key is not None:
        cp = cp.signed(key)
    recorder.add_checkpoint(cp.row())
    return cp


def read_checkpoint(item: Any) -> Checkpoint:
    """A ``Checkpoint`` as it is, or read from a file path; ``CheckpointError`` if unreadable."""
    if isinstance(item, Checkpoint):
        return item
    if not isinstance(item, (str, os.PathLike)):
        raise CheckpointError(f"checkpoints= takes Checkpoint objects or file paths, got {item!r}")
    path = os.path.expanduser(os.fspath(item))
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 20)
    except OSError as exc:
        raise CheckpointError(f"Cannot read checkpoint file {path}: {exc.strerror or exc}.", path) from None
    return Checkpoint.from_json(text, f"checkpoint file {path}")


# --- keys --------------------------------------------------------------------------


def generate_keys(path: str | os.PathLike[str]) -> tuple[str, str]:
    """Write a new Ed25519 key pair: ``path`` (private, PEM, mode 0600) and ``path.pub``; return both paths.

    Refuses (``CheckpointError``) to overwrite either file.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = os.path.expanduser(os.fspath(path))
    public = private + ".pub"
    for existing in (private, public):
        if os.path.lexists(existing):
            raise CheckpointError(
                f"Will not overwrite {existing}: it exists. Choose another path, or remove the old key "
                "first (checkpoints it signed then no longer verify with a new key).", existing)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    for target, data, mode in ((private, pem, 0o600), (public, pub, 0o644)):
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # never readable by others
        except OSError as exc:
            raise CheckpointError(f"Cannot write key file {target}: {exc.strerror or exc}.", target) from None
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return private, public


def _pem(key: Any, what: str) -> tuple[bytes, str]:
    path = os.path.expanduser(os.fspath(key))
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16), path
    except OSError as exc:
        raise CheckpointError(f"Cannot read {what} file {path}: {exc.strerror or exc}.", path) from None


def private_key(key: Any) -> Any:
    """An ``Ed25519PrivateKey``: ``key`` itself, or loaded from a PEM file path (``generate_keys``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if isinstance(key, Ed25519PrivateKey):
        return key
    if not isinstance(key, (str, os.PathLike)):
        raise CheckpointError(f"signing_key takes an Ed25519 private key or the path of its PEM file, got {key!r}")
    data, path = _pem(key, "private key")
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{path} is not an unencrypted PEM private key ({exc}); make one with `stateledger keygen PATH`.",
            path) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 key; make one with "
                              "`stateledger keygen PATH`.", path)
    return loaded


def public_key(key: Any) -> Any:
    """An ``Ed25519PublicKey``: ``key`` itself, a private key's public half, or loaded from a PEM file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if not isinstance(key, (str, os.PathLike)):
        raise CheckpointError(f"public_key takes an Ed25519 public key or the path of its PEM file, got {key!r}")
    data, path = _pem(key, "public key")
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"{path} is not a PEM public key ({exc}); give the PATH.pub file `stateledger keygen PATH` wrote.",
            path) from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 public key.", path)
    return loaded
