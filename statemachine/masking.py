"""Masking: every known secret, in the forms text usually carries it in, becomes ``***``.

A ``Masker`` holds the values to hide and one compiled regular expression
that finds any of them, longest first, in each of these forms:

* as is;
* escaped inside quotes by ``json.dumps`` (ASCII or not), ``repr`` or
  ``ascii``, up to three times (``repr(repr(value))`` in an exception's
  repr, JSON of that, ...);
* URL-encoded (``quote``, ``quote_plus``; upper- or lower-case ``%xx``);
* base64 (standard and URL-safe alphabets) at each of the three byte
  alignments the value can have inside a longer encoded text: the run of
  characters that encodes only the value's bytes is masked.

The expression is rebuilt only when a value is added, so ``mask(text)`` is
one scan of the text, and returns ``text`` itself when nothing is known.

The process keeps one registry, ``MASKER``. ``Secret.get()`` adds what it
returns; ``load_known_secrets()``, called when a ledger opens and when a flow
run starts, adds every ``STATELEDGER_SECRET_*`` variable and every value of
the secrets file, read or not; ``register_secret(value)`` adds a value the
library never saw (one fetched from a vault by your own code). A value
shorter than ``MIN_MASKED_LENGTH`` characters is not masked (it would blank
out ordinary words): a warning on the ``stateledger`` logger names the
secret, never its value. The ``stateledger`` logger gets a filter masking
every record once a first value is known (never at import).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from typing import Any, Mapping
from urllib.parse import quote, quote_plus

__all__ = [
    "Masker", "MASKER", "MASK", "MIN_MASKED_LENGTH", "register_secret", "mask", "load_known_secrets",
    "forms_of", "safe_repr", "forget_all",
]

MASK = "***"
MIN_MASKED_LENGTH = 4
#: A base64 run shorter than this is not masked: too likely to occur in unrelated encoded data.
MIN_BASE64_LENGTH = 6

log = logging.getLogger("stateledger")


def _escapes(text: str) -> set[str]:
    """``text`` as each common quoting would write it between its quotes."""
    return {
        repr(text)[1:-1], ascii(text)[1:-1],
        json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1],
    }


def _as_bytes(value: str) -> bytes:
    try:
        return value.encode("utf-8", "surrogateescape")  # os.environ's undecodable bytes come back
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace")


_HEX = re.compile(r"%[0-9A-F]{2}")


def forms_of(value: str) -> set[str]:
    """Every form of ``value`` that ``Masker`` hides (see the module docstring)."""
    forms = {value}
    for _ in range(3):  # escaped once, twice (repr(repr())), and once more when that is printed
        forms |= {e for f in list(forms) for e in _escapes(f)}
    for url in (quote(value, safe=""), quote(value), quote_plus(value, safe=""), quote_plus(value)):
        forms |= {url, _HEX.sub(lambda m: m.group().lower(), url)}
    raw = _as_bytes(value)
    for k in range(3):  # the value's bytes start at offset k (mod 3) of the encoded data
        start, end = -(-8 * k // 6), 8 * (k + len(raw)) // 6
        encoded = base64.b64encode(b"\0" * k + raw)[start:end].decode("ascii")
        if len(encoded) >= MIN_BASE64_LENGTH:
            forms |= {encoded, encoded.replace("+", "-").replace("/", "_")}
    return {f for f in forms if len(f) >= MIN_MASKED_LENGTH}


def _trie_pattern(words: set[str]) -> str:
    """One regular expression matching any of ``words``, the longest at each position.

    The words are merged into a trie (``abc|abd`` -> ``ab(?:c|d)``), so the
    regex engine reads each character of a text once per position instead of
    trying every word in turn: hundreds of forms cost about as much as one.
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = []
        for ch, child in sorted(node.items()):
            if not ch:
                continue
            run = [ch]
            while len(child) == 1 and "" not in child:  # a run without a fork: no recursion
                (ch, child), = child.items()
                run.append(ch)
            branches.append(re.escape("".join(run)) + build(child))
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here; a longer one is preferred (greedy)
            return f"(?:{body})?"
        return body

    return build(trie)


class Masker:
    """The secret values to hide, and ``mask`` that hides them (one precompiled scan)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._warned: set[str] = set()
        #: Bumped on every change, so a cache of masked texts knows when it is stale.
        self.generation = 0

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:
        return f"<Masker: {len(self._values)} values>"

    def add(self, value: str, name: str | None = None) -> bool:
        """Hide ``value`` from now on; False (and a warning naming ``name``) if it is too short."""
        if not isinstance(value, str) or value in self._values:
            return False
        if len(value) < MIN_MASKED_LENGTH:
            if value:
                self._warn_short(name)
            return False
        with self._lock:
            if value in self._values:
                return False
            self._values.add(value)
            self._forms |= forms_of(value)
            self._pattern = re.compile(_trie_pattern(self._forms))
            self.generation += 1
        install_log_filter()
        return True

    def _warn_short(self, name: str | None) -> None:
        what = f"Secret {name!r}" if name else "A value given to register_secret()"
        if what in self._warned:
            return
        self._warned.add(what)
        log.warning(
            "%s is shorter than %d characters, so it is NOT masked in the ledger, logs or outputs "
            "(masking it would blank out ordinary text). Use a longer secret.", what, MIN_MASKED_LENGTH)

    def mask(self, text: str) -> str:
        """``text`` with every form of every known value replaced by ``***``."""
        pattern = self._pattern
        if pattern is None or type(text) is not str:
            return text
        return pattern.sub(MASK, text)

    __call__ = mask  # a Masker is also the plain ``mask(text) -> text`` function

    def found_in(self, text: str) -> bool:
        """Whether ``text`` holds a known value in any form."""
        pattern = self._pattern
        return pattern is not None and type(text) is str and pattern.search(text) is not None

    def mask_data(self, data: Any) -> Any:
        """JSON-like ``data`` with every string (and dict key) masked; acyclic data only."""
        if self._pattern is None:
            return data
        if type(data) is str:
            return self.mask(data)
        if isinstance(data, dict):
            return {self.mask_data(k): self.mask_data(v) for k, v in data.items()}
        if type(data) is tuple:
            return tuple(self.mask_data(v) for v in data)
        if isinstance(data, (list, tuple)):
            return [self.mask_data(v) for v in data]
        return data

    def forget_all(self) -> None:
        """Forget every value (for tests)."""
        with self._lock:
            self._values.clear()
            self._forms.clear()
            self._warned.clear()
            self._pattern = None
            self.generation += 1


#: The process's registry: what the ledger, the logs, the CLI and the notifiers mask.
MASKER = Masker()


def register_secret(value: str, *, name: str | None = None) -> None:
    """Mask ``value`` everywhere from now on (ledger, logs, errors, CLI output, notifications).

    For secrets the library never reads itself, e.g. a token your code fetches
    from a vault: register it before it can reach a state. ``name`` is used in
    the warning for a value too short to mask.
    """
    if not isinstance(value, str):
        raise TypeError(f"register_secret() takes the secret's text, got a {type(value).__name__}")
    MASKER.add(value, name)


def mask(text: str) -> str:
    """``text`` with every secret the process knows replaced by ``***``."""
    return MASKER.mask(text)


_file_seen: dict[str, tuple[int, int, int]] = {}


def load_known_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Register every ``STATELEDGER_SECRET_*`` value and every value of the secrets file.

    Called when a ledger opens and when a flow run starts, so a secret is
    masked even if this process never reads it. A secrets file that cannot be
    parsed is skipped with a warning (``Secret.get()`` reports it in full).
    """
    from .secrets import ENV_PREFIX, secrets_file_path

    env = os.environ if environ is None else environ
    for var, value in list(env.items()):
        if var.startswith(ENV_PREFIX):
            MASKER.add(value, var[len(ENV_PREFIX):])
    path = secrets_file_path()
    try:
        st = path.stat()
    except OSError:
        return
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    if _file_seen.get(str(path)) == stamp:
        return
    _file_seen[str(path)] = stamp
    from .secrets import _toml_module

    try:
        toml = _toml_module()
        with open(path, "rb") as f:
            data = toml.load(f)
    except Exception as exc:  # not TOML, unreadable, no TOML parser: Secret.get() says it in full
        log.warning("The secrets file %s could not be read to mask its values (%s).", path,
                    type(exc).__name__)
        return
    for name, found in data.items():
        if isinstance(found, str):
            MASKER.add(found, name)
        elif isinstance(found, dict):
            strings = {k: v for k, v in found.items() if isinstance(v, str)}
            for value in strings.values():
                MASKER.add(value, name)
            if len(strings) == len(found):
                MASKER.add(json.dumps(strings), name)


def forget_all() -> None:
    """Forget every registered value and every file read (for tests)."""
    MASKER.forget_all()
    _file_seen.clear()


def safe_repr(obj: Any) -> str:
    """``repr(obj)``, or ``<unrepresentable TypeName>`` when its ``__repr__`` raises."""
    try:
        text = repr(obj)
    except Exception:
        return f"<unrepresentable {type(obj).__name__}>"
    return text if isinstance(text, str) else f"<unrepresentable {type(obj).__name__}>"


class MaskingFilter(logging.Filter):
    """Masks secret values in a log record's message, arguments, traceback and stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not MASKER:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string or __repr__ is logging's problem, not ours
            return True
        masked = MASKER.mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            masked = MASKER.mask(record.exc_text)
            if masked != record.exc_text:
                # drop the live exception so no handler can render the unmasked text again
                record.exc_text, record.exc_info = masked, None
        if record.stack_info:
            record.stack_info = MASKER.mask(record.stack_info)
        return True


_FILTER = MaskingFilter()


def install_log_filter() -> None:
    """Mask the ``stateledger`` logger's records (done when the first secret is known)."""
    logger = logging.getLogger("stateledger")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
