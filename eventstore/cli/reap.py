"""``stateledger reap``: close the runs whose writer died, as ``Crashed``.

Registered on the ``stateledger`` group when ``eventstore.cli`` is imported;
it calls one public function, ``EventStore.reap``.
"""

from __future__ import annotations

import json
import re

import click

from .commands import main
from .options import db_option, json_option, open_ledger, run_option

__all__ = ["reap", "parse_seconds"]

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, None: 1}


def parse_seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """``60s``, ``5m``, ``1h`` or a plain number of seconds."""
    match = _DURATION.match(value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not a duration; write it like 60s, 5m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


@main.command()
@click.option(
    "--older-than", "lease", default="60s", show_default=True, metavar="AGE", callback=parse_seconds,
    help="A writer on another host is gone once its last heartbeat is older than this "
         "(one on this host is gone as soon as its process is).",
)
@run_option
@db_option
@json_option
def reap(lease: float, run_id: str | None, db: str | None, as_json: bool) -> int:
    """Move the open tasks and the flow of each run whose writer died to Crashed.

    A run is reaped when it is not finished and its writer is gone: a
    process of this host that no longer exists, or one on another host
    silent for longer than --older-than. The Crashed events name this process
    as actor and say what was found. Running it again writes nothing more;
    a live run is never touched.

    \b
    Example:
      stateledger reap
      stateledger reap --older-than 5m --db /data/ledger.db
    """
    with open_ledger(db, write=True) as store:
        reaped = store.reap(lease=lease, run_id=run_id)
    if as_json:
        click.echo(json.dumps([{"run_id": r.run_id, "flow": r.flow, "reason": r.reason, "tasks": r.tasks,
                                "events": r.events} for r in reaped], indent=2))
    elif not reaped:
        click.echo("No orphaned runs: nothing to reap.")
    for r in [] if as_json else reaped:
        tasks = f"{len(r.tasks)} task(s) ({', '.join(r.tasks)}) and the flow" if r.tasks else "the flow"
        click.echo(f"Reaped run {r.run_id} (flow {r.flow}): {r.reason}. {tasks} -> Crashed.")
    return 0
