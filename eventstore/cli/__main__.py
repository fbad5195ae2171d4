"""``python -m eventstore.cli``: the ``stateledger`` command."""

from __future__ import annotations

from . import main

main()
