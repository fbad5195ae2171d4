"""Secrets: credentials that handlers read without hard-coding them, and never write anywhere.

``Secret("SLACK_WEBHOOK_URL").get()`` looks, in this order, at

1. the environment variable ``STATELEDGER_SECRET_SLACK_WEBHOOK_URL``;
2. the key ``SLACK_WEBHOOK_URL`` of the TOML secrets file named by
   ``STATELEDGER_SECRETS_FILE`` (default ``~/.stateledger/secrets.toml``).
   The file must be private to its owner (``chmod 600``): a file that group or
   others may read or write is refused with ``SecretsFileError``.

A secret missing from both raises ``SecretNotFoundError`` naming the secret,
the variable and the file it looked in.

Every value a ``Secret`` returns is remembered for the life of the process
(and every secret the environment and the secrets file hold, once a ledger
opens or a flow starts): ``statemachine.masking`` replaces it with ``***``
in the ledger, the logs, our error messages, the CLI's output and
notifications. Values shorter than ``MIN_MASKED_LENGTH`` (4) characters are
not masked (a warning names them): a one-letter "secret" would blank out
every word containing that letter, and is no secret anyway.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from . import masking as _masking
from .errors import ArgumentError, SecretNotFoundError, StateLedgerError
from .masking import MASK, MASKER, MIN_MASKED_LENGTH, mask

__all__ = [
    "Secret",
    "ENV_PREFIX",
    "FILE_ENV",
    "MIN_MASKED_LENGTH",
    "SecretsFileError",
    "mask",
    "remember",
    "secrets_file_path",
    "forget_all",
    "MASK",
]

ENV_PREFIX = "STATELEDGER_SECRET_"
FILE_ENV = "STATELEDGER_SECRETS_FILE"
DEFAULT_FILE = Path("~") / ".stateledger" / "secrets.toml"


class SecretsFileError(StateLedgerError):
    """The secrets file cannot be used (readable by others, not TOML, a value not a string).

    ``path`` names the file. The message never quotes a secret's value.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


class Secret:
    """A named secret; ``get()`` returns its value (a string)."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"A secret needs a non-empty string name, got {name!r}", "name", name)
        self.name = name

    def __repr__(self) -> str:
        return f"<Secret: {self.name}>"

    @property
    def env_var(self) -> str:
        """The environment variable this secret is read from first."""
        return ENV_PREFIX + self.name

    def get(self) -> str:
        """The secret's value; ``SecretNotFoundError`` if neither the env nor the file has it."""
        value = os.environ.get(self.env_var)
        if value is not None:
            remember(value, self.name)
            return value
        path = secrets_file_path()
        found = _read_file(path).get(self.name)
        if found is not None:
            value, parts = _as_text(found, self.name, path)
            for part in parts:
                remember(part, self.name)
            return value
        where = "no such file" if not path.exists() else f"no key {self.name!r} in it"
        raise SecretNotFoundError(
            f"Secret {self.name!r} not found: looked in the environment variable {self.env_var} "
            f"and in the secrets file {path} ({where}). Set {self.env_var}, or add "
            f'{self.name} = "..." to {path} (mode 600; {FILE_ENV} names another file).',
            self.name,
            (f"env:{self.env_var}", f"file:{path}"),
        )


def secrets_file_path() -> Path:
    """The secrets file: ``$STATELEDGER_SECRETS_FILE``, else ``~/.stateledger/secrets.toml``."""
    return Path(os.environ.get(FILE_ENV) or DEFAULT_FILE).expanduser()


# --- the secrets file ---------------------------------------------------------

_file_cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}


def _read_file(path: Path) -> dict[str, Any]:
    """The parsed file (cached while it is unchanged); ``{}`` when it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SecretsFileError(f"Cannot read the secrets file {path}: {exc.strerror}.", path) from None
    if os.name == "posix" and st.st_mode & 0o077:
        raise SecretsFileError(
            f"Refusing the secrets file {path}: its mode is {st.st_mode & 0o777:o}, so other users "
            f"may read it. Make it private to you with: chmod 600 {path}",
            path,
        )
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _file_cache.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    toml = _toml_module()
    try:
        with open(path, "rb") as f:
            data = toml.load(f)
    except toml.TOMLDecodeError as exc:
        raise SecretsFileError(
            f"The secrets file {path} is not valid TOML ({exc}); write one NAME = \"value\" per line.",
            path,
        ) from None
    except OSError as exc:
        raise SecretsFileError(f"Cannot read the secrets file {path}: {exc.strerror}.", path) from None
    _file_cache[str(path)] = (stamp, data)
    return data


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10 only
        import tomli
    except ImportError:  # pragma: no cover
        raise SecretsFileError(
            "Reading the secrets file on Python 3.10 needs the 'tomli' package: pip install tomli"
        ) from None
    return tomli  # pragma: no cover


def _as_text(found: Any, name: str, path: Path) -> tuple[str, list[str]]:
    """A file value as the string ``get()`` returns, and the parts to mask.

    A string is itself; a table of strings (e.g. HTTP headers) becomes JSON
    object text, and each of its values is masked on its own.
    """
    if isinstance(found, str):
        return found, [found]
    if isinstance(found, dict) and all(isinstance(v, str) for v in found.values()):
        return json.dumps(found), [json.dumps(found), *found.values()]
    raise SecretsFileError(
        f"Secret {name!r} in {path} is a {type(found).__name__}; it must be a string "
        '(NAME = "value") or a table of strings (for headers).',
        path,
    )


# --- masking (statemachine.masking) ---------------------------------------------


def remember(value: str, name: str | None = None) -> None:
    """Mask ``value`` from now on, in every form ``statemachine.masking`` knows.

    ``Secret.get()`` calls this; call it yourself for a part of a secret that
    may show up alone (e.g. one URL out of a list).
    """
    MASKER.add(value, name)


def forget_all() -> None:
    """Forget every remembered value (for tests): ``mask`` is a no-op until the next secret."""
    _masking.forget_all()
    _file_cache.clear()
