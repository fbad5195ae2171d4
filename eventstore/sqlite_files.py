"""The outside of a SQLite ledger file: where it may live, its schema, its errors in our words.

Used by ``eventstore.sqlite`` only: the checks before a file is opened
(missing folder, a folder, a dangling link, a FIFO or a device, not SQLite,
unwritable), a new file created private (0600), the schema's SQL (made
with sqlite-utils, imported only then), a descriptor held on the file for the
per-write check, and the translation of ``sqlite3`` errors into
``LedgerWriteError`` with a message saying what to do.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from urllib.parse import quote

from .errors import LedgerError, LedgerLocationError, LedgerWriteError, NotALedgerError
from .mapper import COLUMNS, FINISHED_TYPES

__all__ = ["check_location", "create_private", "schema_sql", "upgrade_sql", "read_only_uri", "write_error",
           "WRITERS_SQL", "RUNS_TRIGGER_SQL", "RUNS_NOW", "REFRESH_RUN_SQL",
           "LedgerFile"]

#: Who writes each run, and its heartbeat (outside the hash chain). Created with a new ledger, and
#: by the first claim in a ledger made before writers were recorded (no schema version change).
WRITERS_SQL = (
    "CREATE TABLE IF NOT EXISTS writers (run_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, "
    "started TEXT, heartbeat TEXT NOT NULL, released TEXT, actor TEXT NOT NULL DEFAULT '')"
)


def check_location(path: str) -> bool:
    """Refuse a missing or unwritable folder, and files that are not SQLite; True if new."""
    _refuse_special(path)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise LedgerLocationError(
            f"Cannot create ledger {path}: the folder {folder} does not exist. Create it "
            "first, or point STATELEDGER_DB at a file in an existing folder.", path, folder)
    if os.path.isdir(path):
        raise NotALedgerError(
            f"{path} is a folder, not a ledger file. Give the path of a file (e.g. "
            f"{os.path.join(path, 'ledger.db')}).", path, "a folder")
    exists = os.path.exists(path)
    if not exists or os.path.getsize(path) == 0:
        if not _writable(folder) or (exists and not _writable(path)):
            raise LedgerLocationError(
                f"Cannot create ledger {path}: the folder {folder} cannot be written. "
                "Choose a folder you can write to.", path, folder)
        return not exists
    try:
        with open(path, "rb") as f:
            header = f.read(16)
    except OSError as exc:
        raise LedgerError(f"Cannot read ledger {path}: {exc}", path) from exc
    if header != b"SQLite format 3\x00":
        raise NotALedgerError(
            f"{path} is not a ledger: it is not a SQLite database (it starts with "
            f"{header[:8]!r}). Point STATELEDGER_DB (or EventStore's path) at a ledger file or "
            "at a new file.", path, "not SQLite")
    return False


def create_private(path: str) -> bool:
    """Create the empty ledger file mode 0600 whatever the umask (SQLite gives its -wal and -shm
    the same mode); False if another process created it at this very moment."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def _refuse_special(path: str) -> None:
    """Refuse a dangling symbolic link, a FIFO, a device or a socket before anything is created."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise LedgerLocationError(
                f"Cannot use {path} as a ledger: it is a symbolic link to {os.readlink(path)}, which does "
                "not exist. Point --db (or STATELEDGER_DB) at a file, or remove the link.",
                path, os.path.dirname(path)) from None
        return
    except OSError:
        return  # a folder we cannot search: check_location says so
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else None)
    if kind is not None:
        raise NotALedgerError(
            f"{path} is {kind}, not a ledger file. Point --db (or STATELEDGER_DB) at a regular file "
            "(e.g. ledger.db in a folder you own).", path, kind)


def schema_sql() -> list[str]:
    """The schema, written by sqlite-utils (executed inside our own transaction).

    sqlite-utils (and click, which it imports) is loaded here, when a ledger is
    created, not when one is opened: opening an existing ledger stays quick.
    """
    import sqlite_utils

    db = sqlite_utils.Database(memory=True)
    try:
        events = db.create_table_sql(
            "events",
            {c: (int if c in ("seq", "attempt") else str) for c in COLUMNS},
            pk="seq", not_null={"event_id", "run_id", "timestamp", "kind", "key", "state", "hash"},
            if_not_exists=True,
        )
        runs = db.create_table_sql(
            "runs",
            {"run_id": str, "flow": str, "state": str, "started": str, "ended": str,
             "events": int, "first_seq": int, "last_seq": int, "last_hash": str},
            pk="run_id", if_not_exists=True,
        )
        cursors = db.create_table_sql(
            "cursors", {"name": str, "seq": int, "filter": str, "updated": str, "high": int},
            pk="name", if_not_exists=True,
        )
    finally:
        db.close()
    return [
        events, runs, cursors, WRITERS_SQL,
        "CREATE INDEX IF NOT EXISTS runs_first ON runs (first_seq)",
        *_TRUST_SQL,
        "INSERT INTO meta (key, value) VALUES ('hash_v2_from', '1')",
        RUNS_TRIGGER_SQL,
    ]


#: Schema 2's additions (shared by a new ledger and the upgrade of a schema-1 one): the
#: ledger's identity and hash rules (``meta``), the rule of each imported row, the
#: checkpoints taken, and an index on ``run_id`` so ``verify RUN_ID`` reads only that run.
_TRUST_SQL = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS hash_rules (seq INTEGER PRIMARY KEY, version INTEGER NOT NULL, hashed_seq INTEGER)",
    "CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, count INTEGER NOT NULL, root TEXT NOT NULL, "
    "at TEXT NOT NULL, signature TEXT)",
    "CREATE INDEX IF NOT EXISTS events_run ON events (run_id)",
)


_FINISHED = ", ".join(f"'{name}'" for name in sorted(FINISHED_TYPES))

#: Schema 3: the ``runs`` summary is kept by the database, in the transaction of each event's
#: INSERT, so that appending an event is one statement. A run's first event creates its row
#: (state "Pending" until a flow event says otherwise); a flow event sets the run's state, and
#: its end when the state finishes the run (kept if already set; cleared when the run runs
#: again); both bring ``events``, ``last_seq`` and ``last_hash`` up to date. A task event of a
#: run not finished leaves the row alone (one page less to write per commit: the row is
#: completed when read, ``RUNS_NOW``); once the run is finished every event updates it.
RUNS_TRIGGER_SQL = f"""CREATE TRIGGER IF NOT EXISTS events_runs AFTER INSERT ON events
WHEN NEW.kind = 'flow' OR NOT EXISTS (SELECT 1 FROM runs WHERE run_id = NEW.run_id AND ended IS NULL) BEGIN
  INSERT INTO runs (run_id, flow, state, started, ended, events, first_seq, last_seq, last_hash)
  VALUES (NEW.run_id, NEW.flow, CASE WHEN NEW.kind = 'flow' THEN NEW.state ELSE 'Pending' END, NEW.timestamp,
          CASE WHEN NEW.kind = 'flow' AND NEW.state IN ({_FINISHED}) THEN NEW.timestamp END,
          1, NEW.seq, NEW.seq, NEW.hash)
  ON CONFLICT (run_id) DO UPDATE SET
    events = runs.events + (SELECT count(*) FROM events AS e WHERE e.run_id = NEW.run_id AND e.seq > runs.last_seq),
    last_seq = NEW.seq, last_hash = NEW.hash,
    state = CASE WHEN NEW.kind = 'flow' THEN NEW.state ELSE runs.state END,
    ended = CASE WHEN NEW.kind <> 'flow' THEN runs.ended
                 WHEN NEW.state IN ({_FINISHED}) THEN coalesce(runs.ended, NEW.timestamp) ELSE NULL END;
END"""

_NEWER = "FROM events AS e WHERE e.run_id = r.run_id AND e.seq > r.last_seq"
_NEWER_OF_RUNS = _NEWER.replace("r.", "runs.")
#: Bring the stored row of a run in progress up to date with its events (``RUNS_NOW``, written
#: down): run at each heartbeat of its writer, so the stored count and last hash of a run
#: being written, or of one whose writer died, lag its events by a heartbeat at most.
REFRESH_RUN_SQL = (
    f"UPDATE runs SET events = events + (SELECT count(*) {_NEWER_OF_RUNS}), "
    f"last_hash = (SELECT e.hash {_NEWER_OF_RUNS} ORDER BY e.seq DESC LIMIT 1), "
    f"last_seq = (SELECT max(e.seq) {_NEWER_OF_RUNS}) "
    f"WHERE run_id = ? AND ended IS NULL AND EXISTS (SELECT 1 {_NEWER_OF_RUNS})"
)
#: The runs summary as readers see it (a table expression: ``SELECT ... FROM {RUNS_NOW} ...``):
#: the row of a run not finished is completed from its events after ``last_seq`` (the
#: run_id index finds them). On a ledger of an older schema, whose rows are always
#: complete, that finds nothing and the row reads as stored.
RUNS_NOW = (
    "(SELECT r.run_id AS run_id, r.flow AS flow, r.state AS state, r.started AS started, r.ended AS ended, "
    f"r.events + CASE WHEN r.ended IS NULL THEN (SELECT count(*) {_NEWER}) ELSE 0 END AS events, "
    "r.first_seq AS first_seq, "
    f"CASE WHEN r.ended IS NULL THEN coalesce((SELECT max(e.seq) {_NEWER}), r.last_seq) ELSE r.last_seq END "
    "AS last_seq, "
    f"CASE WHEN r.ended IS NULL THEN coalesce((SELECT e.hash {_NEWER} ORDER BY e.seq DESC LIMIT 1), r.last_hash) "
    "ELSE r.last_hash END AS last_hash FROM runs AS r)"
)


def upgrade_sql(version: int) -> list[str]:
    """The statements taking a ledger of schema ``version`` (1 or 2) to the current one (3).

    From 1: old rows keep their hashes: ``hash_v2_from`` records the first seq
    hashed with rule 2 (one past the last row); ``events`` gains ``reason``
    (NULL in every old row, so their hashed content is unchanged); the cursors'
    high-water mark starts at where each cursor is. From 2: the trigger that
    keeps ``runs`` (``RUNS_TRIGGER_SQL``); no stored byte of an event changes.
    """
    if version == 2:
        return [RUNS_TRIGGER_SQL]
    if version != 1:
        raise ValueError(f"no upgrade from schema version {version}")
    return [
        "ALTER TABLE events ADD COLUMN reason TEXT",
        "ALTER TABLE cursors ADD COLUMN high INTEGER",
        "UPDATE cursors SET high = seq",
        *_TRUST_SQL,
        "INSERT INTO meta (key, value) SELECT 'hash_v2_from', CAST(coalesce(max(seq), 0) + 1 AS TEXT) FROM events",
        RUNS_TRIGGER_SQL,
    ]


def read_only_uri(path: str) -> str:
    """A read-only URI of ``path``: ``immutable`` when no writer is live (no ``-wal``) or the folder
    cannot be written, so that nothing, not even a ``-wal`` or ``-shm`` file, is created beside it."""
    if not os.path.isfile(path):
        raise LedgerLocationError(f"No ledger at {path}: the file does not exist.", path, os.path.dirname(path))
    idle = not os.path.exists(path + "-wal")
    return f"file:{quote(path)}?mode=ro" + ("&immutable=1" if idle or not _writable(os.path.dirname(path)) else "")


def write_error(exc: sqlite3.Error, path: str, timeout: float, doing: str) -> LedgerWriteError:
    code = getattr(exc, "sqlite_errorname", "") or _code_from_message(str(exc))
    if code.startswith("SQLITE_BUSY") or code.startswith("SQLITE_LOCKED"):
        return LedgerWriteError(
            f"Could not {doing} ledger {path}: another process kept it locked for more than "
            f"{timeout:g} s ({exc}). Retry, or give EventStore a longer timeout=.", path, "locked")
    if code.startswith("SQLITE_FULL") or (code.startswith("SQLITE_IOERR") and _out_of_space(path)):
        return LedgerWriteError(
            f"Could not {doing} ledger {path}: the disk is full, or the file reached the size this "
            f"process may write ({exc}). Free some space, or point STATELEDGER_DB at another disk.",
            path, "full")
    if code.startswith("SQLITE_READONLY"):
        return LedgerWriteError(
            f"Could not {doing} ledger {path}: the file is read-only ({exc}). Make it writable, or "
            "use another ledger file.", path, "read-only")
    return LedgerWriteError(
        f"Could not {doing} ledger {path}: {exc} ({code or type(exc).__name__}). Check that the file "
        "still exists, is writable and that its disk is healthy.", path, "io")


def _code_from_message(message: str) -> str:
    """The SQLite error code of a message (Python 3.10's sqlite3 has no ``sqlite_errorname``)."""
    for needle, code in (("locked", "SQLITE_BUSY"), ("is full", "SQLITE_FULL"),
                         ("readonly", "SQLITE_READONLY"), ("disk I/O", "SQLITE_IOERR")):
        if needle in message:
            return code
    return ""


def _out_of_space(path: str) -> bool:
    """Whether a write error is a full disk, or a file at the process's size limit (EFBIG)."""
    try:
        vfs = os.statvfs(os.path.dirname(path))
        if vfs.f_bavail * vfs.f_frsize < 1 << 20:
            return True
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            sizes = [os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p)]
            return any(size + (1 << 16) > limit for size in sizes)
    except (OSError, ImportError, ValueError):
        pass
    return False


class LedgerFile:
    """The file a recorder writes: its identity when opened, and the check before each write.

    ``check`` runs ``os.fstat`` on a descriptor held on the file (cheaper than
    a ``stat`` of the path): a link count of 0 is a file removed, or replaced
    by another one; no write bit, a file made read-only (root ignores modes).
    A ledger renamed on the same disk is still the file the run writes into.
    Closing any descriptor on a file drops every POSIX lock the process holds
    on it, SQLite's included: so the descriptor is opened at the first write,
    once per file and process (shared by its recorders), and closed only after
    the last of them closed its connection (``release``).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        st = os.stat(path)
        self.identity = (st.st_dev, st.st_ino)
        self._fd: int | None = None
        self._held = False

    def check(self) -> None:
        """Raise ``LedgerWriteError`` (reason "removed" or "read-only") unless the file can take a write."""
        if not self._held:
            self._hold()
        st = os.fstat(self._fd) if self._fd is not None else self._stat_path()
        if not st.st_nlink:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: the file was removed (or replaced by another "
                "file) since it was opened. Nothing more of this run is recorded; restore the file or "
                "use another ledger.", self.path, "removed")
        if not st.st_mode & 0o222:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: the file was made read-only. Make it "
                "writable (chmod u+w), or use another ledger.", self.path, "read-only")

    def _hold(self) -> None:
        with _held_lock:
            try:
                st = os.stat(self.path)
            except OSError:
                st = None
            if st is None or (st.st_dev, st.st_ino) != self.identity:
                self._stat_path()  # raises: removed or replaced
            entry = _held.get(self.identity)
            if entry is None:
                try:
                    fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError:  # cannot be read: the path is checked on each write instead
                    self._held = True
                    return
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != self.identity:  # replaced this very moment: the path is
                    self._held = True  # checked from now on; this descriptor stays open (see above)
                    self._stat_path()
                    return
                entry = _held[self.identity] = [fd, 0]
            entry[1] += 1
            self._fd, self._held = entry[0], True

    def _stat_path(self) -> os.stat_result:
        """The path's stat (no descriptor held): the path must name the file opened."""
        try:
            st = os.stat(self.path)
        except OSError:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: the file was removed. Nothing more of this "
                "run is recorded; restore the file or use another ledger.", self.path, "removed") from None
        if (st.st_dev, st.st_ino) != self.identity:
            raise LedgerWriteError(
                f"Could not append to ledger {self.path}: the file was replaced by another file since "
                "it was opened. Open the ledger again.", self.path, "removed")
        return st

    def release(self) -> None:
        """This recorder closed its connection; the last one of the file closes the descriptor."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with _held_lock:
            entry = _held.get(self.identity)
            if entry is None or entry[0] != fd:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[self.identity]
        os.close(fd)


#: (st_dev, st_ino) of a ledger file -> [a read-only descriptor on it, how many recorders hold it]
_held: dict[tuple[int, int], list[int]] = {}
_held_lock = threading.Lock()


def _writable(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & 0o222)
