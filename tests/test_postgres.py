"""The PostgreSQL ledger on a real server (``STATELEDGER_TEST_PG``): what only it does.

The Recorder and EventStore suites run on it through the ``recorder`` and
``store`` fixtures; here: opening errors (password never printed), its schema
version, concurrent writer processes, LISTEN/NOTIFY, lost connections, moving
runs between SQLite and PostgreSQL, and ``stateledger copy``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from eventstore import EventStore, LedgerError, LedgerWriteError, NotALedgerError, SchemaVersionError
from eventstore.errors import LedgerConnectionError
from eventstore.postgres import PostgresRecorder
from eventstore.protocol import Query
from ledger_fixtures import chain
from test_recorders import row

SECRET = "s3cr3t-pw-do-not-print"


def admin(pg_url: str) -> psycopg.Connection:
    """A plain connection to the test server (the fixture's URL without our ?schema=)."""
    return psycopg.connect(pg_url.split("?schema=")[0].replace("&schema=", "&x="), autocommit=True)


def schema_of(pg_url: str) -> str:
    return pg_url.rsplit("schema=", 1)[1]


def with_login(pg_url: str, user: str, password: str) -> str:
    parts = urlsplit(pg_url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture
def secret_url(pg_url):
    """``pg_url`` logged in as a role of its own whose password is ``SECRET`` (dropped afterwards)."""
    role = "r_" + schema_of(pg_url)[-8:]
    with admin(pg_url) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{SECRET}\'')
        db = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f'GRANT CREATE ON DATABASE "{db}" TO "{role}"')
    yield with_login(pg_url, role, SECRET)
    with admin(pg_url) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        conn.execute(f'DROP OWNED BY "{role}" CASCADE')
        conn.execute(f'DROP ROLE "{role}"')


# --- opening -----------------------------------------------------------------------------


def test_a_new_schema_is_created_and_the_password_is_never_shown(secret_url, pg_url):
    with EventStore(secret_url) as store:
        assert store.path == store.recorder.path and ":***@" in store.path
        assert SECRET not in repr(store) + repr(store.recorder) + store.path
        chain(2).run(store=store, run_id="r")
        assert store.verify().ok and store.history("r")[0].seq == 1
    with admin(pg_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema_of(pg_url),))}
    assert tables == {"meta", "events", "runs", "cursors", "hash_rules", "checkpoints", "writers"}


def test_an_unreachable_server_is_one_line_without_the_password():
    with pytest.raises(LedgerConnectionError) as info:
        EventStore(f"postgresql://me:{SECRET}@127.0.0.1:9/ledger", timeout=2)
    message = str(info.value)
    assert info.value.reason == "unreachable" and "\n" not in message
    assert SECRET not in message and "postgresql://me:***@127.0.0.1:9/ledger" in message
    assert "cannot be reached" in message


@pytest.mark.parametrize("url, detail", [
    (f"postgresql://me:{SECRET}@127.0.0.1:notaport/db", "Port could not be cast to integer value as 'notaport'"),
    (f"postgresql://me:{SECRET}@[::1/db", "Invalid IPv6 URL"),
    (f"postgresql://me:{SECRET}@127.0.0.1:5432/db?sslmode=bogus", 'invalid sslmode value: "bogus"'),
])
def test_a_bad_url_is_one_line_and_exit_2_without_the_password(url, detail):
    done = cli("runs", "--db", url)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("stateledger: error: Cannot open the PostgreSQL ledger postgresql://me:***@")
    assert f"the URL is not valid ({detail}" in done.stderr or f"(connection is bad: {detail})" in done.stderr
    assert SECRET not in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_refused_login_says_so_without_the_password(pg_url):
    with pytest.raises(LedgerConnectionError) as info:
        EventStore(with_login(pg_url, "stateledger", SECRET))
    message = str(info.value)
    assert info.value.reason == "login" and "\n" not in message and SECRET not in message
    assert "refused the login of user 'stateledger'" in message and ":***@" in message


def test_a_missing_database_says_so(pg_url):
    parts = urlsplit(pg_url)
    with pytest.raises(LedgerConnectionError, match="the database does not exist") as info:
        EventStore(urlunsplit(parts._replace(path="/no_such_db_here")))
    assert info.value.reason == "database"


def test_without_psycopg_the_error_names_the_extra(pg_url):
    code = ("import sys; sys.modules['psycopg'] = None\n"
            "from eventstore import EventStore\n"
            f"EventStore({pg_url!r})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("statemachine.errors.LedgerError: Cannot open the PostgreSQL ledger")
    assert "pip install 'stateledger[postgres]'" in last


def test_a_newer_schema_version_is_refused_and_left_alone(pg_url):
    PostgresRecorder(pg_url).close()
    with admin(pg_url) as conn:
        conn.execute(f'UPDATE "{schema_of(pg_url)}".meta SET value = %s WHERE key = %s', ("99", "schema_version"))
    from eventstore.postgres_schema import SCHEMA_VERSION

    with pytest.raises(SchemaVersionError,
                       match=f"written by schema version 99; this stateledger reads up to {SCHEMA_VERSION}") as info:
        EventStore(pg_url)
    assert (info.value.found, info.value.supported) == (99, SCHEMA_VERSION) == (99, 2)
    with admin(pg_url) as conn:
        assert conn.execute(f'SELECT value FROM "{schema_of(pg_url)}".meta WHERE key = %s',
                            ("schema_version",)).fetchone() == ("99",)


def test_a_schema_of_another_application_is_refused(pg_url):
    with admin(pg_url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema_of(pg_url)}"')
        conn.execute(f'CREATE TABLE "{schema_of(pg_url)}".orders (id int)')
    with pytest.raises(NotALedgerError, match="is not a ledger: it holds the tables orders"):
        EventStore(pg_url)


# --- writers -----------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys
    from eventstore.mapper import ContentRow
    from eventstore.postgres import PostgresRecorder

    url, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rec = PostgresRecorder(url)
    for i in range(n):
        for run_id in ("shared", f"own-{me}"):
            rec.append(ContentRow(f"{me}-{run_id}-{i}", run_id, f"2026-01-01T00:00:00.{i:06d}+00:00", "task",
                                  "t", f"{me}-{i}", "f", 1, "Success", "{}", "{}", None, "[]", me))
    rec.close()
""")


def test_concurrent_writer_processes_keep_every_chain_and_readers_never_skip_a_seq(pg_url):
    writers, n = 4, 60
    PostgresRecorder(pg_url).close()
    follower = EventStore(pg_url)
    seen: list[int] = []
    stop = threading.Event()
    reader = threading.Thread(target=lambda: seen.extend(
        e.seq for e in follower.tail(0, poll_interval=0.05, stop=stop, timeout=120)))
    reader.start()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_url, str(w), str(n)]) for w in range(writers)]
    assert [p.wait(timeout=300) for p in procs] == [0] * writers
    with EventStore(pg_url) as store:
        events = store.events()
        deadline = time.monotonic() + 30
        while len(seen) < len(events) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        reader.join(30)
        follower.close()
        seqs = [e.seq for e in events]
        assert len(events) == 2 * writers * n and len(set(seqs)) == len(seqs) and seqs == sorted(seqs)
        assert seen == seqs  # a tail never missed a seq committed after a higher one
        report = store.verify()
        assert report.ok, report.problems
        shared = store.history("shared")
        assert len(shared) == writers * n
        assert all(b.prev_hash == a.hash for a, b in zip(shared, shared[1:]))
        assert {r.run_id: r.events for r in store.runs()} == {
            "shared": writers * n, **{f"own-{w}": n for w in range(writers)}}


def test_two_recorders_appending_to_one_run_reread_its_end(pg_url):
    a, b = PostgresRecorder(pg_url), PostgresRecorder(pg_url)
    try:
        a.append(row("r", 1))
        b.append(row("r", 2))  # b never saw r: it reads the end
        a.append(row("r", 3))  # a's remembered end is stale: it rereads and chains to b's row
        rows = a.select(Query(run_id="r"))
        assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    finally:
        a.close()
        b.close()


# --- following, lost connections -----------------------------------------------------------


def test_tail_wakes_on_notify_and_does_not_poll_the_server(pg_url):
    writer = PostgresRecorder(pg_url)
    reader = PostgresRecorder(pg_url)
    selects = []
    real_select = reader.select
    reader.select = lambda q, **kw: selects.append(q) or real_select(q, **kw)  # type: ignore[method-assign]
    store = EventStore(recorder=reader)
    got: list[float] = []
    stop = threading.Event()

    def follow() -> None:
        for _ in store.tail(0, poll_interval=0.1, stop=stop, timeout=60):
            got.append(time.monotonic())

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        time.sleep(1.5)  # idle: 15 poll intervals, but nothing was committed
        assert len(selects) <= 3, f"{len(selects)} reads while idle"
        latencies = []
        for n in range(1, 6):
            sent = time.monotonic()
            writer.append(row("r", n))
            deadline = time.monotonic() + 10
            while len(got) < n and time.monotonic() < deadline:
                time.sleep(0.002)
            latencies.append(got[n - 1] - sent)
        assert max(latencies) < 1.0, latencies
    finally:
        stop.set()
        thread.join(10)
        writer.close()
        reader.close()


def _terminate(pg_url: str, app: str, *, dry_run: bool = False) -> int:
    """Terminate the server's backends of connections named ``app``; return how many there were."""
    what = "pid" if dry_run else "pg_terminate_backend(pid)"
    with admin(pg_url) as conn:
        return len(conn.execute(
            f"SELECT {what} FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchall())


def test_a_follower_whose_connections_are_terminated_reconnects_and_resumes_from_its_cursor(pg_url):
    from subscribers import DurableSubscription

    app = "follower-" + schema_of(pg_url)[-8:]
    writer = EventStore(pg_url)
    follower = EventStore(pg_url + f"&application_name={app}")
    chain(2).run(store=writer, run_id="before")
    seen = []
    stop = threading.Event()
    sub = DurableSubscription("pager", lambda e: seen.append(e.seq), store=follower, start="beginning")
    thread = threading.Thread(target=lambda: sub.follow(poll_interval=0.05, stop=stop, timeout=60))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while _terminate(pg_url, app, dry_run=True) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # until it caught up and listens
        assert seen == [e.seq for e in writer.events()]
        assert _terminate(pg_url, app) == 2  # its reading and its listening connections
        chain(3).run(store=writer, run_id="after")
        expected = [e.seq for e in writer.events()]
        deadline = time.monotonic() + 20
        while len(seen) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == expected
    finally:
        stop.set()
        thread.join(20)
    assert writer.load_cursor("pager")[0] == expected[-1]
    writer.close()
    follower.close()


def test_a_writer_whose_connection_is_terminated_reconnects_and_appends_once(pg_url):
    app = "writer-" + schema_of(pg_url)[-8:]
    with EventStore(pg_url + f"&application_name={app}") as store:
        chain(2).run(store=store, run_id="one")
        assert _terminate(pg_url, app) == 1
        chain(2).run(store=store, run_id="two")
        assert store.verify().ok and len(store.history("two")) == len(store.history("one"))


class Proxy:
    """A TCP relay on 127.0.0.1 to the test server that can go down and come back (a server restart)."""

    def __init__(self, pg_url: str) -> None:
        parts = urlsplit(pg_url)
        self.upstream = (parts.hostname, parts.port or 5432)
        self.port = 0
        self.conns: list[socket.socket] = []
        self.up()
        self.url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{self.port}"))

    def up(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.listen()
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as server:
            self.conns += [client, server]
            back = threading.Thread(target=self._pump, args=(server, client), daemon=True)
            back.start()
            self._pump(client, server)
            back.join()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        """Refuse new connections and cut the open ones (their sockets are closed by their threads)."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of its thread
        self.listener.close()
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.conns = []


def test_a_server_that_comes_back_within_the_timeout_loses_nothing(pg_url):
    """Decided: an append whose connection broke reconnects for up to timeout= seconds, then goes on."""
    proxy = Proxy(pg_url)
    with EventStore(proxy.url, timeout=10) as store:
        chain(2).run(store=store, run_id="one")
        proxy.down()
        threading.Timer(1.0, proxy.up).start()
        state = chain(3).run(store=store, run_id="two")  # its first append waits for the server
        assert state.is_successful()
        assert store.verify().ok and [r.events for r in store.runs()] == [
            len(store.history("two")), len(store.history("one"))]
    proxy.down()


def test_a_server_that_stays_away_stops_the_run_with_a_write_error(pg_url):
    proxy = Proxy(pg_url)
    with EventStore(proxy.url, timeout=1) as store:
        store.recorder.append(row("r", 1))
        proxy.down()
        started = time.monotonic()
        with pytest.raises(LedgerWriteError, match="the connection was lost and not regained within 1 s") as info:
            store.recorder.append(row("r", 2))
        assert info.value.reason == "connection" and time.monotonic() - started < 10
    with EventStore(pg_url) as store:
        assert [e.key for e in store.events()] == ["t1-1"]  # nothing half-written


def test_an_append_after_close_is_a_write_error(pg_url):
    rec = PostgresRecorder(pg_url)
    rec.close()
    rec.close()
    with pytest.raises(LedgerWriteError, match="was closed") as info:
        rec.append(row("r", 1))
    assert info.value.reason == "closed"


# --- SQLite <-> PostgreSQL -----------------------------------------------------------------


def test_a_run_moves_from_sqlite_to_postgresql_and_back_with_its_hashes(pg_url, tmp_path):
    with EventStore(tmp_path / "a.db") as lite:
        chain(3).run(store=lite, run_id="etl-1")
        lite.export(tmp_path / "etl-1.jsonl", run_id="etl-1")
        original = [(e.event_id, e.hash, e.prev_hash) for e in lite.history("etl-1")]
    with EventStore(pg_url) as pg:
        assert pg.import_jsonl(tmp_path / "etl-1.jsonl") == len(original)
        assert pg.verify().ok
        assert [(e.event_id, e.hash, e.prev_hash) for e in pg.history("etl-1")] == original
        pg.export(tmp_path / "back.jsonl", run_id="etl-1")
        with pytest.raises(LedgerError, match="Import a run once"):
            pg.import_jsonl(tmp_path / "etl-1.jsonl")
    with EventStore(tmp_path / "b.db") as back:
        back.import_jsonl(tmp_path / "back.jsonl")
        assert back.verify().ok
        assert [(e.event_id, e.hash, e.prev_hash) for e in back.history("etl-1")] == original
    assert (tmp_path / "back.jsonl").read_text() == (tmp_path / "etl-1.jsonl").read_text()


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eventstore.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_stateledger_copy_moves_a_whole_ledger_and_refuses_a_non_empty_target(pg_url, tmp_path):
    lite = str(tmp_path / "a.db")
    with EventStore(lite) as store:
        chain(2).run(store=store, run_id="one")
        chain(3).run(store=store, run_id="two")
        total = len(store.events())
    done = cli("copy", "--from", lite, "--to", pg_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Copied {total} events of 2 runs from {lite} to postgresql://")
    done = cli("verify", "--db", pg_url)
    assert done.returncode == 0 and done.stdout.startswith(f"OK: {total} events verified")
    refused = cli("copy", "--from", lite, "--to", pg_url)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("stateledger: error: Cannot copy") and "holds events already" in refused.stderr
    with EventStore(tmp_path / "more.db") as store:
        chain(2).run(store=store, run_id="three")
    assert cli("copy", "--from", str(tmp_path / "more.db"), "--to", pg_url).returncode == 2
    done = cli("copy", "--from", str(tmp_path / "more.db"), "--to", pg_url, "--append")
    assert done.returncode == 0, done.stderr
    again = cli("copy", "--from", lite, "--to", pg_url, "--append")
    assert again.returncode == 2 and "2 run(s) are in both, e.g. one, two" in again.stderr
    back = str(tmp_path / "back.db")
    assert cli("copy", "--from", pg_url, "--to", back).returncode == 0
    with EventStore(back) as store:
        assert store.verify().ok and sorted(r.run_id for r in store.runs()) == ["one", "three", "two"]


def test_every_cli_command_takes_a_postgresql_url_by_option_or_environment(secret_url, tmp_path):
    pg_url = secret_url
    flow = tmp_path / "flow.py"
    flow.write_text("from ledger_fixtures import chain\nflow = chain(2)\n")
    env = {**os.environ, "STATELEDGER_DB": pg_url,
           "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    done = cli("run", str(flow), "--run-id", "r1", env=env)
    assert done.returncode == 0, done.stderr
    assert "(ledger postgresql://" in done.stdout and SECRET not in done.stdout + done.stderr
    runs = cli("runs", "--json", "--db", pg_url)
    assert runs.returncode == 0 and '"run_id": "r1"' in runs.stdout
    for args in (["show", "r1"], ["audit", "--run", "r1"], ["verify", "r1"], ["export", "--run", "r1"],
                 ["replay", "r1"], ["follow", "--from-start", "--count", "2"]):
        done = cli(*args, env=env)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip() and SECRET not in done.stdout + done.stderr, args


def test_a_read_command_on_a_schema_without_a_ledger_creates_nothing(pg_url):
    done = cli("runs", "--db", pg_url)
    assert done.returncode == 2
    assert done.stderr.startswith(f"stateledger: error: No ledger in schema {schema_of(pg_url)} of PostgreSQL")
    with admin(pg_url) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema_of(pg_url),)).fetchone() is None


@pytest.mark.parametrize("durability, level", [("normal", None), ("full", "on")])
def test_full_durability_sets_synchronous_commit(pg_url, durability, level):
    with admin(pg_url) as conn:
        default = conn.execute("SHOW synchronous_commit").fetchone()[0]
    rec = PostgresRecorder(pg_url, durability=durability)
    try:
        assert rec._conn.execute("SHOW synchronous_commit").fetchone()[0] == (level or default)
    finally:
        rec.close()


KILLED = textwrap.dedent("""
    import sys, time
    from eventstore import EventStore
    from statemachine import Flow, task

    @task
    def step(x=0):
        print(x, flush=True)
        time.sleep(0.01)
        return x + 1

    with Flow("killed") as flow:
        x = step()
        for _ in range(999):
            x = step(x)
    flow.run(store=EventStore(sys.argv[1]), run_id="victim")
""")


def test_a_writer_killed_mid_run_loses_nothing_committed_and_blocks_no_one(pg_url):
    proc = subprocess.Popen([sys.executable, "-c", KILLED, pg_url], stdout=subprocess.PIPE, text=True)
    for _ in range(20):  # 20 tasks ran
        proc.stdout.readline()
    proc.kill()
    proc.wait(30)
    proc.stdout.close()
    with EventStore(pg_url, timeout=5) as store:
        report = store.verify()
        assert report.ok, report.problems
        (run,) = store.runs()
        events = store.history("victim")
        assert run.events == len(events) >= 40 and not run.finished
        chain(2).run(store=store, run_id="next")  # the ledger's lock died with the writer's transaction
        store.recorder.append(row("victim", 99))  # and so did the run's row lock
        assert store.verify().ok


def test_verify_finds_rows_changed_or_deleted_on_the_server(pg_url):
    with EventStore(pg_url) as store:
        chain(3).run(store=store, run_id="a")
        chain(3).run(store=store, run_id="b")
        a, b = store.history("a"), store.history("b")
    s = f'"{schema_of(pg_url)}"'
    with admin(pg_url) as conn:
        conn.execute(f"UPDATE {s}.events SET actor = 'mallory' WHERE seq = %s", (a[3].seq,))
        conn.execute(f"DELETE FROM {s}.events WHERE seq = %s", (b[-1].seq,))
    with EventStore(pg_url) as store:
        found = [(p.run_id, p.seq, p.what) for p in store.verify().problems]
    assert found == [("a", a[3].seq, "changed"), ("b", b[-2].seq, "count")]


CREATOR = "import sys; from eventstore.postgres import PostgresRecorder; PostgresRecorder(sys.argv[1]).close()"


def test_writers_that_create_a_new_ledger_at_once_all_open_it(pg_url):
    procs = [subprocess.Popen([sys.executable, "-c", CREATOR, pg_url], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with admin(pg_url) as conn:
        assert conn.execute(f'SELECT key FROM "{schema_of(pg_url)}".meta ORDER BY key').fetchall() == [
            ("hash_v2_from",), ("ledger_id",), ("schema_version",)]
