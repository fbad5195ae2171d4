"""Secrets: credentials that handlers read without hard-coding them.

``Secret("SLACK_WEBHOOK_URL").get()`` reads the environment variable
``STATELEDGER_SECRET_SLACK_WEBHOOK_URL``. A missing secret raises
``SecretNotFoundError`` naming the secret and every place we looked.
"""

from __future__ import annotations

import os

from .errors import SecretNotFoundError

__all__ = ["Secret", "ENV_PREFIX"]

ENV_PREFIX = "STATELEDGER_SECRET_"


class Secret:
    """A named secret; ``get()`` returns its value."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"A secret needs a non-empty string name, got {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"<Secret: {self.name}>"

    def get(self) -> str:
        """The secret's value; raises ``SecretNotFoundError`` if it is not set anywhere."""
        var = ENV_PREFIX + self.name
        value = os.environ.get(var)
        if value is None:
            raise SecretNotFoundError(
                f"Secret {self.name!r} not found: looked in the environment variable {var}. "
                f"Set {var} to its value.",
                self.name,
                (f"env:{var}",),
            )
        return value


def mask(text: str) -> str:
    """``text`` with every secret value read in this process replaced by ``***``.

    The ledger and the logs pass every string they receive through this.
    """
    return text  # extended by the notifications work: no secret is tracked yet
