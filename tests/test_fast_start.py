"""A fast start and a cheap write path that stores the same bytes.

Heavy modules load only when needed; per-process values are reset at fork;
memoised state texts and the fast row JSON are the codec's bytes exactly; the
per-write file check (fstat on a held descriptor) still stops a run whose
ledger was removed or replaced.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from eventstore import EventStore
from statemachine import Flow, Task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTRAS = ("sqlite_utils", "click", "dask", "distributed", "psycopg", "cryptography", "apprise", "requests")
HEAVY = (*EXTRAS, "orjson", "socket", "shutil", "uuid")


def loaded_after(code: str, tmp_path, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The ``heavy`` modules a fresh interpreter has loaded after running ``code``."""
    script = code + f"\nimport sys\nprint(repr([m for m in {heavy!r} if m in sys.modules]))\n"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=ROOT, HOME=str(tmp_path))).stdout
    return eval(out.splitlines()[-1])


def test_importing_the_packages_loads_no_heavy_module(tmp_path):
    assert loaded_after("import statemachine, eventstore, subscribers, statemachine.executors", tmp_path) == []


def test_running_a_flow_on_an_existing_ledger_loads_neither_sqlite_utils_nor_click(tmp_path):
    path = str(tmp_path / "l.db")
    EventStore(path).close()
    code = textwrap.dedent(f"""
        from eventstore import EventStore
        from statemachine import Flow, Task
        with EventStore({path!r}) as store:
            Flow("f", tasks=[Task()]).run(store=store, run_id="r")
            assert store.verify().ok and len(store.history("r")) == 4
    """)
    assert loaded_after(code, tmp_path, EXTRAS) == []  # orjson (and the uuid it imports) hash the rows
    with EventStore(path) as store:
        assert [r.run_id for r in store.runs()] == ["r"]


def test_stateledger_help_loads_no_ledger_module(tmp_path):
    code = textwrap.dedent("""
        import sys
        from eventstore.cli import main
        sys.argv = ["stateledger", "--help"]
        try:
            main()
        except SystemExit as exit:
            assert exit.code in (0, None), exit.code
        assert "sqlite3" not in sys.modules
    """)
    # click is the CLI (it loads shutil and uuid itself); nothing of the ledger or the extras
    assert set(loaded_after(code, tmp_path)) <= {"click", "shutil", "uuid"}


def test_a_forked_child_commits_under_its_own_actor_and_event_ids(tmp_path):
    """The actor (user@host:pid) and the event-id prefix are per process, also after os.fork()."""
    script = textwrap.dedent("""
        import json, os, sys
        from statemachine.events import current_actor, new_event_id
        before = (current_actor(), new_event_id())
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, json.dumps([current_actor(), new_event_id(), os.getpid()]).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        child = json.loads(os.read(read, 4096))
        print(json.dumps({"parent": [*before, current_actor(), new_event_id(), os.getpid()], "child": child}))
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=ROOT)).stdout
    seen = json.loads(out)
    actor, first_id, actor_again, second_id, parent_pid = seen["parent"]
    child_actor, child_id, child_pid = seen["child"]
    assert actor == actor_again and actor.endswith(f":{parent_pid}")
    assert child_actor.endswith(f":{child_pid}") and child_actor.rsplit(":", 1)[0] == actor.rsplit(":", 1)[0]
    assert second_id[:12] == first_id[:12] and int(second_id[12:], 16) == int(first_id[12:], 16) + 1
    assert child_id[:12] != first_id[:12] and int(child_id[12:], 16) == 1


def test_event_ids_are_unique_and_increase_within_a_process(tmp_path):
    with EventStore(":memory:") as store:
        Flow("f", tasks=[Task() for _ in range(5)]).run(store=store, run_id="r")
        ids = [e.event_id for e in store.history("r")]
    assert len(set(ids)) == len(ids) == 12
    assert len({i[:12] for i in ids}) == 1 and [int(i[12:], 16) for i in ids] == sorted(int(i[12:], 16) for i in ids)


def test_the_memoised_state_texts_are_the_codecs_full_encoding_byte_for_byte():
    """The ledger's bytes do not change: mapper.state_text is codec.state_to_json, faster."""
    from eventstore import codec
    from eventstore.mapper import state_text
    from statemachine.masking import Masker
    from statemachine.states import Cached, Failed, Pending, Running, Success

    class Mine(Success):
        pass

    masker = Masker()
    masker.add("hunter2-secret")
    results = [None, 0, 1, -7, 2**63, 2**64, 2**65, 2**70, True, False, "", "x", 'quote " and \\ back',
               "tab\tnew\nline\x00\x1f\x7f", "unicodé ☃ \u2028", "lone \udc80", "has hunter2-secret in it",
               "a" * codec.RESULT_LIMIT, "a" * (codec.RESULT_LIMIT + 1), 1.5, float("nan"), [1], {"a": 1}, (1, 2)]
    for cls in (Success, Failed, Running, Pending, Cached, Mine):
        for message in (None, "Task run succeeded.", 'with "quotes"', "ünï", "hunter2-secret here", 3):
            for m in (None, masker):
                for _ in range(2):  # the first call fills the cache, the second reads it
                    for result in results:
                        state = cls(message, result=result)
                        assert state_text(state, m) == codec.state_to_json(state, m), (cls, message, result, m)
    masker.add("another-secret")  # a new secret: texts kept under the old generation are not reused
    state = Success("another-secret", result=5)
    assert state_text(state, masker) == codec.state_to_json(state, masker) and "another-secret" not in state_text(state, masker)
    with_context = Success("ok", result=3, context={"k": "v"})
    assert state_text(with_context) == codec.state_to_json(with_context)


def test_a_ledger_replaced_by_another_file_stops_the_run(tmp_path):
    """The per-write check (fstat on a held descriptor) sees a file renamed over the ledger."""
    from eventstore import LedgerWriteError
    from statemachine import task

    path, other = tmp_path / "l.db", tmp_path / "other.db"
    EventStore(other).close()
    count = {"n": 0}

    @task
    def step(x=None):
        count["n"] += 1
        if count["n"] == 2:
            os.replace(other, path)
        return count["n"]

    with Flow("doomed") as flow:
        step(step(step()))
    with EventStore(path) as store:
        with pytest.raises(LedgerWriteError) as info:
            flow.run(store=store, run_id="doomed")
    assert info.value.reason == "removed" and "replaced" in str(info.value) and count["n"] == 2


def test_stores_of_one_file_in_one_process_share_the_held_descriptor(tmp_path):
    """Closing one store leaves the other's check working (and SQLite's locks in place)."""
    path = tmp_path / "l.db"
    first = EventStore(path)
    Flow("f", tasks=[Task()]).run(store=first, run_id="a")
    for i in range(3):
        with EventStore(path) as second:
            Flow("f", tasks=[Task()]).run(store=second, run_id=f"b{i}")
    Flow("f", tasks=[Task()]).run(store=first, run_id="c")
    first.close()
    with EventStore(path) as store:
        assert sorted(r.run_id for r in store.runs()) == ["a", "b0", "b1", "b2", "c"] and store.verify().ok
    from eventstore import sqlite_files

    assert not any(key[1] == os.stat(path).st_ino for key in sqlite_files._held)  # the last close let go


def test_rows_hash_the_same_with_and_without_orjson(monkeypatch):
    """row_bytes (orjson when installed) writes row_json's very bytes, so hashes never depend on it."""
    import orjson

    from eventstore import mapper

    chars = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    rows = [
        ("id", "run", "2026-01-01T00:00:00.000000+00:00", "task", "n", "k", "f", 1, "Success",
         '{"type":"Running"}', '{"type":"Success","result":"x"}', None, "[]", "me@host:1"),
        (7, chars, "", 0, -1, 2**63 - 1, -2**63, 2**64 - 1, None),
        (1, 2**64, "past 64 bits"), (1, "lone \udc80"), (1, 1.5, 1e16, float("nan")), (True, False, 1),
        tuple("\x00\x1f\x7f\"\\/\u2028\u2029\ufeff"),
    ]
    mapper.row_bytes(("first",))
    assert mapper._fast_dumps is orjson.dumps  # the suite runs with the fast path (imported at first use)
    for row in rows:
        try:
            expected = mapper.row_json(row).encode()
        except UnicodeEncodeError:  # a lone surrogate cannot be hashed: both paths say so alike
            with pytest.raises(UnicodeEncodeError):
                mapper.row_bytes(row)
            continue
        assert mapper.row_bytes(row) == expected, row
        fast = mapper.chain_hash("prev", row)
        monkeypatch.setattr(mapper, "_fast_dumps", None)
        assert mapper.row_bytes(row) == expected and mapper.chain_hash("prev", row) == fast
        monkeypatch.undo()


def test_names_with_a_lone_surrogate_or_a_secret_are_cleaned_on_the_fast_path_too(tmp_path):
    """The mapper skips clean_text only for ASCII names with nothing to mask."""
    from eventstore.mapper import Mapper
    from statemachine.events import Event
    from statemachine.masking import Masker
    from statemachine.states import Pending, Running, utcnow

    def row(name, masker):
        mapper = Mapper(masker) if masker is not None else Mapper()
        event = Event("r", utcnow(), "task", name, name, 1, Pending(), Running(), actor="me@host:1", flow="f")
        return mapper.to_row(event)

    plain = row("plain", None)
    assert (plain.name, plain.key, plain.run_id, plain.flow, plain.actor) == ("plain", "plain", "r", "f", "me@host:1")
    odd = row("odd \udc80", None)
    assert odd.name == odd.key == "odd \\udc80"
    masker = Masker()
    masker.add("s3cret-value")
    hidden = row("task-s3cret-value", masker)
    assert "s3cret-value" not in hidden.name and "s3cret-value" not in hidden.key


def test_iso_writes_what_isoformat_writes_across_minutes_hours_and_years():
    """codec.iso reuses the text of the minute it last wrote: the same characters as isoformat."""
    import datetime

    from eventstore import codec

    utc = datetime.timezone.utc
    starts = [datetime.datetime(2026, 12, 31, 23, 58, tzinfo=utc), datetime.datetime(1, 1, 1, tzinfo=utc),
              datetime.datetime(9999, 12, 31, 23, 58, tzinfo=utc), datetime.datetime(2024, 2, 29, 0, 59, tzinfo=utc)]
    for start in starts:
        for step in range(0, 190, 7):  # back and forth across minute, hour, day and year boundaries
            for micro in (0, 1, 999_999, 123_456):
                value = start + datetime.timedelta(seconds=step % 120, microseconds=micro)
                assert codec.iso(value) == value.isoformat(timespec="microseconds"), value
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5)
    other = datetime.datetime(2026, 1, 2, 5, 4, 5, 6, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert codec.iso(naive) == "2026-01-02T03:04:05.000000+00:00"
    assert codec.iso(other) == "2026-01-02T03:04:05.000006+00:00"


def test_masked_names_are_memoised_per_secret_generation():
    """A run's names are masked once per known set of secrets; a secret added later is masked from then on."""
    import datetime

    from eventstore.mapper import Mapper
    from statemachine.events import Event
    from statemachine.masking import Masker
    from statemachine.states import Pending, Running

    masker = Masker()
    masker.add("first-secret-value")
    mapper = Mapper(masker)

    def row(i):
        event = Event("run-first-secret-value", datetime.datetime.now(datetime.timezone.utc), "task",
                      "name-later-secret-value", f"key-{i}", 1, Pending(), Running(), actor="me@first-secret-value:1",
                      event_id=f"id{i}", flow="flow-later-secret-value")
        return mapper.to_row(event)

    first, again = row(1), row(2)
    assert (first.run_id, first.name, first.flow, first.actor) == (
        "run-***", "name-later-secret-value", "flow-later-secret-value", "me@***:1")
    assert (again.run_id, again.name, again.actor) == (first.run_id, first.name, first.actor)
    masker.add("later-secret-value")
    later = row(3)
    assert (later.run_id, later.name, later.flow, later.actor) == ("run-***", "name-***", "flow-***", "me@***:1")


def test_a_mask_function_that_lengthens_a_result_is_applied_as_the_codec_would():
    """A result masked into a longer or non-ASCII text is cut and escaped by the codec, memo or not."""
    import datetime

    from eventstore import codec
    from eventstore.mapper import Mapper
    from statemachine.events import Event
    from statemachine.states import Running, Success

    mapper = Mapper(lambda text: text.replace("secret", "ü" * (codec.RESULT_LIMIT + 1)))
    for i, result in enumerate(("plain", "a secret", "plain again", "another secret")):
        event = Event("r", datetime.datetime.now(datetime.timezone.utc), "task", "t", "t-1", 1, Running(),
                      Success("Task run succeeded.", result=result), event_id=f"id{i}", flow="f")
        stored = codec.state_from_json(mapper.to_row(event).new_state)
        if "secret" in result:
            assert isinstance(stored.result, codec.CutResult) and stored.result.size > codec.RESULT_LIMIT
        else:
            assert stored.result == result


def test_memoised_texts_never_mix_up_two_maskers():
    """Mappers made and dropped one after another (their maskers may reuse an address) each mask their own way."""
    import datetime

    from eventstore.mapper import Mapper
    from statemachine.events import Event
    from statemachine.states import Pending, Running, Success

    for i in range(40):
        mapper = Mapper(lambda text, i=i: text.replace("secret", f"<{i}>"))
        for new in (Running("a secret"), Success("a secret", result=1), Success("ok", result="a secret")):
            event = Event("r", datetime.datetime.now(datetime.timezone.utc), "task", "t", "t-1", 1, Pending(), new,
                          event_id=f"id{i}", flow="f")
            text = mapper.to_row(event).new_state
            assert f"a <{i}>" in text and "secret" not in text, (i, text)
        del mapper
