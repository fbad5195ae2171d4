"""The ``stateledger`` commands that keep a ledger honest: ``verify``, ``checkpoint``, ``keygen``.

Each calls one public function (``EventStore.verify``, ``EventStore.checkpoint``,
``eventstore.checkpoints.generate_keys``). Checkpoint and key files are read
before the ledger is opened: one that cannot be read, or is not a
checkpoint, is one line on stderr and exit 2; a ledger that does not extend a
checkpoint is a verification failure, exit 1.
"""

from __future__ import annotations

import os

import click

from . import format as out
from .commands import main
from .options import complete_run_ids, db_option, json_option, open_ledger, resolve_run, shown_path

__all__ = ["verify", "checkpoint", "keygen"]


@main.command()
@click.argument("run_id", required=False, shell_complete=complete_run_ids)
@click.option("--checkpoint", "checkpoint_files", multiple=True, metavar="FILE",
              help="A checkpoint (from `stateledger checkpoint`) the ledger must still extend. Repeatable.")
@click.option("--public-key", metavar="FILE", help="Check each checkpoint's signature with this key (PATH.pub).")
@db_option
@json_option
def verify(run_id: str | None, checkpoint_files: tuple[str, ...], public_key: str | None, db: str | None,
           as_json: bool) -> int:
    """Check the ledger: hash chains, the runs summary, checkpoints, cursors; exit 1 and list the problems.

    Without RUN_ID every run is checked; with it, only that run's events
    are read. Each --checkpoint proves nothing before it was deleted,
    changed, renumbered or rewritten since it was taken.

    \b
    Example:
      stateledger verify && echo intact
      stateledger verify --checkpoint /mnt/audit/ledger-0042.json --public-key audit.key.pub
    """
    from eventstore.checkpoints import public_key as load_public_key, read_checkpoint

    checkpoints = [read_checkpoint(f) for f in checkpoint_files]
    key = load_public_key(public_key) if public_key else None
    with open_ledger(db) as store:
        if run_id is not None:
            run_id = resolve_run(store, run_id)
        report = store.verify(run_id, checkpoints=checkpoints, public_key=key)
    click.echo(out.verify_text(report, shown_path(db), run_id, as_json))
    return 0 if report.ok else 1


@main.command()
@click.option("--key", metavar="PATH", help="Sign it with this private key (from `stateledger keygen`).")
@click.option("-o", "--output", metavar="FILE", default="-", help="Write it here instead of to stdout.")
@db_option
def checkpoint(key: str | None, output: str, db: str | None) -> int:
    """Seal the ledger up to its last event: print a checkpoint to keep elsewhere.

    Keep checkpoints where whoever can write the ledger cannot (another
    host, a write-once bucket, an auditor's mailbox); `verify --checkpoint`
    then proves the ledger still extends them. The ledger records each
    checkpoint too, so the next one reads only the events after it.

    \b
    Example:
      stateledger checkpoint --key audit.key -o /mnt/audit/ledger-$(date +%F).json
    """
    from eventstore.checkpoints import private_key

    signing_key = private_key(key) if key else None  # a bad key file fails before the ledger is touched
    with open_ledger(db, write=True) as store:  # the ledger records each checkpoint
        cp = store.checkpoint(signing_key)
    if output == "-":
        click.echo(cp.to_json())
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(cp.to_json() + "\n")
        click.echo(f"Checkpoint of {shown_path(db)}: {cp.count} events up to seq {cp.seq}"
                   f"{', signed' if cp.signature else ''}, written to {output}", err=True)
    return 0


@main.command()
@click.argument("path", metavar="PATH")
def keygen(path: str) -> int:
    """Write a new Ed25519 key pair for signing checkpoints: PATH (private, mode 0600) and PATH.pub.

    Give PATH to `checkpoint --key`, and PATH.pub to whoever verifies.
    Existing files are never overwritten.

    \b
    Example:
      stateledger keygen ~/.stateledger/audit.key
    """
    from eventstore.checkpoints import generate_keys

    private, public = generate_keys(os.path.expanduser(path))
    click.echo(f"Wrote the private key {private} (mode 0600: keep it secret) and the public key {public}")
    return 0
