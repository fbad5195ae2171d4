"""import_jsonl is all or nothing: a bad line names itself, the target ledger stays byte for byte as it was."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from eventstore import EventStore, LedgerError
from eventstore.errors import ImportLineError
from eventstore.export import import_jsonl
from eventstore.mapper import ContentRow
from eventstore.memory import MemoryRecorder
from eventstore.protocol import Importing, Query
from ledger_fixtures import chain, everything_flow, file_digest
from statemachine import Flow, task

NON_UTF8 = os.fsdecode(b"caf\xe9.txt")  # a lone surrogate, stored as \udce9


@pytest.fixture
def export(tmp_path) -> Path:
    """An export of three runs: everything, a chain, and a task with a lone surrogate in its result."""
    @task
    def odd():
        return NON_UTF8

    with EventStore(tmp_path / "source.db") as source:
        everything_flow(with_object=False).run(store=source, run_id="a")
        chain(3).run(store=source, run_id="b")
        Flow("odd", [odd]).run(store=source, run_id="c")
        source.export(tmp_path / "x.jsonl")
    return tmp_path / "x.jsonl"


@pytest.fixture
def target(tmp_path) -> Path:
    """A ledger already holding one run, closed: its bytes are the reference."""
    path = tmp_path / "target.db"
    with EventStore(path) as store:
        chain(2, "before").run(store=store, run_id="before")
    return path


def folder_state(path: Path) -> tuple[str, list[str]]:
    return file_digest(path), sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))


def refused_leaving_target_as_it_was(target: Path, file, match: str, reason: str, line: int,
                                     **options) -> ImportLineError:
    before = folder_state(target)
    with EventStore(target) as store:
        with pytest.raises(ImportLineError, match=match) as info:
            store.import_jsonl(file, **options)
        assert store.verify().ok and [r.run_id for r in store.runs()] == ["before"]
        assert len(store.events()) == len(store.history("before"))
    assert folder_state(target) == before  # byte for byte, and no stray -wal or -journal
    error = info.value
    assert (error.reason, error.line) == (reason, line)
    assert error.file == str(file) and "nothing was imported" in str(error).lower()
    return error


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


# --- each thing that can be wrong with a line --------------------------------------


def test_bad_json_names_its_line_and_the_column(export, target):
    lines = lines_of(export)
    column = lines[4].index(b'","timestamp"') + 3
    lines[4] = lines[4].replace(b'","timestamp"', b'",timestamp"', 1)
    error = refused_leaving_target_as_it_was(target, write(export, lines), r"Line 5 of .*x\.jsonl: it is not an "
                                             rf"exported event: not valid JSON \(.* at column {column}\)",
                                             "not JSON", 5)
    assert error.path == str(target)


def test_a_changed_line_fails_its_hash(export, target):
    lines = lines_of(export)
    n = next(i for i, line in enumerate(lines) if i > 5 and b'"message":"Task run succeeded."' in line)
    lines[n] = lines[n].replace(b"Task run succeeded.", b"Task run faked.")
    refused_leaving_target_as_it_was(target, write(export, lines), rf"Line {n + 1} of .*does not match its hash: "
                                     "the line was changed after the export", "hash", n + 1)


def test_a_byte_that_is_not_utf8_is_named_with_its_column(export, target):
    lines = lines_of(export)
    lines[2] = lines[2][:10] + b"\xe9" + lines[2][10:]
    refused_leaving_target_as_it_was(target, write(export, lines), r"Line 3 of .*: byte 0xe9 at column 11 is "
                                     "not UTF-8", "not UTF-8", 3)


def test_a_cut_off_last_line_says_the_file_was_truncated(export, target):
    data = export.read_bytes()
    export.write_bytes(data[: len(data) - 30])
    n = data.count(b"\n")
    refused_leaving_target_as_it_was(target, export, rf"Line {n} of .*: the last line is cut off .* The file "
                                     "was truncated", "cut off", n)


def test_a_line_over_the_size_cap_is_refused_and_a_larger_cap_imports_it(export, target):
    lines = lines_of(export)
    longest = max(range(len(lines)), key=lambda i: len(lines[i]))
    cap = len(lines[longest]) - 2
    refused_leaving_target_as_it_was(target, export, rf"Line {longest + 1} of .*longer than {cap} bytes.* "
                                     "larger max_line_bytes=", "too long", longest + 1, max_line_bytes=cap)
    with EventStore(target) as store:
        assert store.import_jsonl(export, max_line_bytes=cap + 1) == len(lines)
        assert store.verify().ok


def test_a_missing_line_breaks_its_runs_chain(export, target):
    lines = lines_of(export)
    del lines[3]
    refused_leaving_target_as_it_was(target, write(export, lines), r"Line 4 of .*a line of that run is missing "
                                     "or out of order", "chain", 4)


def test_a_line_that_is_json_but_no_event_says_what_is_missing(export, target):
    lines = lines_of(export)
    lines[1] = b'{"seq": 2, "run_id": "a"}\n'
    refused_leaving_target_as_it_was(target, write(export, lines), r"Line 2 of .*not an exported event: no "
                                     r"'event_id', .*'hash' field", "not an event", 2)
    lines[1] = b"[1, 2]\n"
    refused_leaving_target_as_it_was(target, write(export, lines), r"a JSON list, not an object",
                                     "not an event", 2)


def test_a_run_the_ledger_already_holds_undoes_the_lines_before_it(export, target, tmp_path):
    """The ledger refuses the last run: the two runs before it, stored in the same transaction, go too."""
    with EventStore(tmp_path / "source.db") as source:
        source.export(tmp_path / "c.jsonl", run_id="c")
    with EventStore(target) as store:
        store.import_jsonl(tmp_path / "c.jsonl")
    before = folder_state(target)
    first_of_c = next(i for i, line in enumerate(lines_of(export), 1) if b'"run_id":"c"' in line)
    assert first_of_c > 20
    with EventStore(target) as store:
        with pytest.raises(ImportLineError, match=rf"Line {first_of_c} of .*Import a run once") as info:
            store.import_jsonl(export)
        assert [r.run_id for r in store.runs()] == ["c", "before"] and store.verify().ok
    assert (info.value.reason, info.value.line) == ("ledger", first_of_c)
    assert "Nothing of the file was imported" in str(info.value)
    assert folder_state(target) == before


# --- fixed and retried ---------------------------------------------------------------


def test_a_failed_import_can_be_fixed_and_retried(export, target, tmp_path):
    good = export.read_bytes()
    lines = lines_of(export)
    lines[5] = lines[5].replace(b'"attempt":1', b'"attempt":2')
    write(export, lines)
    with EventStore(target) as store:
        with pytest.raises(ImportLineError, match="Line 6"):
            store.import_jsonl(export)
        export.write_bytes(good)  # fixed
        assert store.import_jsonl(export) == len(lines)
        assert store.verify().ok
        with EventStore(tmp_path / "source.db") as source:
            for run_id in ("a", "b", "c"):
                assert [e.hash for e in store.history(run_id)] == [e.hash for e in source.history(run_id)]
            assert store.rebuild("c").tasks == source.rebuild("c").tasks
            assert store.rebuild("c").tasks["odd-1"].result == NON_UTF8


# --- every recorder; open files ----------------------------------------------------


def test_the_memory_ledger_is_left_as_it_was_too(export):
    store = EventStore(":memory:")
    chain(2, "before").run(store=store, run_id="before")
    before = list(store.recorder.select(Query())), store.runs()
    lines = lines_of(export)
    write(export, lines[:-1] + [lines[-1].replace(b'"flow"', b'"folw"', 1)])
    with pytest.raises(ImportLineError, match=f"Line {len(lines)} of"):
        store.import_jsonl(export)
    assert (list(store.recorder.select(Query())), store.runs()) == before and store.verify().ok
    chain(2, "before").run(store=store, run_id="after")  # appends go on from the same seq
    assert store.max_seq() == len(before[0]) + 6 and store.verify().ok


def test_open_text_and_binary_files_import_alike(export, tmp_path):
    text = export.read_text(encoding="utf-8")
    with EventStore(tmp_path / "t.db") as t, EventStore(tmp_path / "b.db") as b:
        assert t.import_jsonl(io.StringIO(text)) == b.import_jsonl(io.BytesIO(text.encode())) == text.count("\n")
        assert t.verify().ok and b.verify().ok
        with pytest.raises(ImportLineError, match="Line 1 of .*longer than") as info:
            EventStore(":memory:").import_jsonl(io.StringIO(text), max_line_bytes=100)
        assert "100 characters" in str(info.value)


def test_the_recorders_import_rows_in_one_transaction(recorder, export):
    """A recorder's import_rows rolls back what it stored when the rows it is fed stop with an error."""
    assert isinstance(recorder, Importing)
    import_jsonl(recorder, export)  # a first import, then one that fails half-way
    before = recorder.select(Query()), recorder.runs(), recorder.run_chain_ends()
    rows = [ContentRow(*r.content) for r in before[0]]
    last_of_b = recorder.run_chain_ends()["b"][1]

    def fed():
        yield rows[0]._replace(run_id="b", event_id="more-of-b"), last_of_b, "h0"  # continues a run held
        for i, row in enumerate(rows[:5]):
            yield row._replace(run_id=f"copy-{i // 2}"), None if i % 2 == 0 else "h", "h" if i % 2 == 0 else "h2"
        raise RuntimeError("the file ends badly")

    with pytest.raises(RuntimeError, match="ends badly"):
        recorder.import_rows(fed())
    assert (recorder.select(Query()), recorder.runs(), recorder.run_chain_ends()) == before


class NoImportRows:
    """A recorder written before ``import_rows`` existed: everything else delegates."""

    def __init__(self) -> None:
        self.inner = MemoryRecorder()
        self.path = self.inner.path

    def __getattr__(self, name):
        if name == "import_rows":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_recorder_without_import_rows_gets_the_whole_file_checked_first(export):
    rec = NoImportRows()
    assert not isinstance(rec, Importing)
    lines = lines_of(export)
    write(export, lines[:-1] + [lines[-1][:-20]])
    with pytest.raises(ImportLineError, match="cut off"):
        import_jsonl(rec, export)
    assert rec.inner.rows == []


def test_copying_a_ledger_with_a_changed_event_copies_nothing(tmp_path):
    """copy_to (stateledger copy) goes through import_rows: a tampered row half-way undoes the rows before it."""
    from ledger_fixtures import raw

    source_path = tmp_path / "source.db"
    with EventStore(source_path) as source:
        chain(3).run(store=source, run_id="first")
        chain(3).run(store=source, run_id="second")
        middle = source.history("second")[2].seq
    with raw(source_path) as conn:
        conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = ?", (middle,))
    with EventStore(tmp_path / "target.db") as target:
        chain(2, "before").run(store=target, run_id="before")
    before = folder_state(tmp_path / "target.db")
    with EventStore(source_path) as source, EventStore(tmp_path / "target.db") as target:
        with pytest.raises(LedgerError, match=rf"Event seq {middle} of run second .* does not match its hash.* "
                                            "Nothing was copied"):
            source.copy_to(target, append=True)
        assert [r.run_id for r in target.runs()] == ["before"] and target.verify().ok
    assert folder_state(tmp_path / "target.db") == before
