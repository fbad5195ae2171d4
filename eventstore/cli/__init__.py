"""``stateledger``, the command line: beside the store it mostly reads.

``commands`` holds the commands (each calls one public function; ``trust``
those that keep a ledger honest: verify, checkpoint, keygen; ``restart``
and ``mark`` are in ``manual``), ``options``
the shared options and the opening of ``--db``, ``reap`` the reaper's command, ``loading`` the loading of
flow files and handlers, ``format`` the printing. ``main`` is the console
script's entry point; ``python -m eventstore.cli`` runs it too.
"""

from __future__ import annotations

from . import manual  # noqa: F401  (registers restart and mark on the group)
from . import reap as _reap  # noqa: F401  (registers `stateledger reap` on the group)
from . import trust  # noqa: F401  (registers verify, checkpoint and keygen on main)
from .commands import StateLedgerGroup, cli, main
from .loading import load_flow, load_handler, parse_params

__all__ = ["main", "cli", "StateLedgerGroup", "load_flow", "parse_params", "load_handler"]
