"""Secrets stay masked on every path out: ledger bytes, logs, errors, CLI output, exports, notifications.

The secret is only in the environment (or the secrets file): no test reads it
through ``Secret``, so each proves the library knew it before the first event.
Every check looks for the secret and for each common encoding of it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from eventstore import EventStore
from eventstore.codec import MESSAGE_LIMIT, RESULT_LIMIT
from report_fixtures import data_of
from servers import http_receiver
from statemachine import Flow, masking, register_secret, task
from statemachine.errors import LedgerError, StateLedgerError
from statemachine.states import Failed

ROOT = Path(__file__).resolve().parent.parent
SECRET = 'zq9W/+"\\é-8c1f5e9a'  # slash, plus, quote, backslash, non-ASCII: every escaping differs


@pytest.fixture(autouse=True)
def forget_secrets():
    """Masking is process-wide: each test starts and ends knowing no secret."""
    masking.forget_all()
    yield
    masking.forget_all()


def encodings(value: str) -> dict[str, str]:
    """The forms a secret commonly takes in text, computed here independently of the library."""
    forms = {
        "raw": value, "repr": repr(value), "repr(repr)": repr(repr(value)), "json": json.dumps(value),
        "json(json)": json.dumps(json.dumps(value)), "json(repr)": json.dumps(repr(value)),
        "url": quote(value, safe=""), "url-plus": quote_plus(value),
        "url-lower-hex": re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe="")),
    }
    data = value.encode()
    for k in range(3):  # the run of base64 characters that encodes only the secret's bytes
        start, end = -(-8 * k // 6), 8 * (k + len(data)) // 6
        forms[f"base64+{k}"] = base64.b64encode(b"\0" * k + data)[start:end].decode()
        forms[f"urlsafe-base64+{k}"] = base64.urlsafe_b64encode(b"\0" * k + data)[start:end].decode()
    return forms


def leaked(text: str | bytes, value: str = SECRET) -> list[str]:
    """Which encodings of ``value`` occur in ``text`` (as they are, or JSON-escaped in stored text)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = []
    for name, form in encodings(value).items():
        needles = {form, json.dumps(form, ensure_ascii=False)[1:-1], json.dumps(form)[1:-1]}
        if any(n in text for n in needles):
            found.append(name)
    return found


def ledger_bytes(folder: Path, name: str = "ledger.db") -> bytes:
    """The ledger file, its -wal and its -shm, as they are on disk now."""
    files = sorted(folder.glob(name + "*"))
    assert files
    return b"".join(p.read_bytes() for p in files)


def every_encoding_message(value: str) -> str:
    return " | ".join(encodings(value).values())


def leaky_flow(value: str) -> Flow:
    """Tasks named after the secret returning, raising and straddling the cut with it."""

    @task(name=f"fetch-{value}")
    def fetch():
        return {"token": value, **{k: v for k, v in encodings(value).items()}}

    @task
    def login():
        raise PermissionError(f"login refused: {every_encoding_message(value)}")

    @task
    def big_result():
        return "a" * (RESULT_LIMIT - 5) + value  # its JSON is cut in the middle of the secret

    def long_message(obj, old, new):
        if new.is_successful():
            return Failed("m" * (MESSAGE_LIMIT - 3) + value, result=[value])

    @task(state_handlers=[long_message])
    def noisy():
        return 1

    flow = Flow(f"nightly-{value}")
    for t in (fetch, login, big_result, noisy):
        flow.add_task(t)
    return flow


def test_the_leak_detector_of_these_tests_finds_every_encoding():
    assert leaked("nothing here") == []
    for name, form in encodings(SECRET).items():
        assert name in leaked(f"before {form} after"), name


def test_a_secret_only_in_the_environment_never_reaches_the_ledger_in_any_encoding(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", SECRET)
    with caplog.at_level(logging.DEBUG, logger="stateledger"):
        with EventStore(tmp_path / "ledger.db") as store:
            state = leaky_flow(SECRET).run(store=store, run_id=f"run-{SECRET}")
            on_disk = ledger_bytes(tmp_path)  # with the -wal and -shm still there
            history = store.history(store.runs()[0].run_id)
            export = io.StringIO()
            store.export(export)
            csv_export = io.StringIO()
            store.export(csv_export, format="csv")
            assert store.verify().ok
    assert state.is_failed()
    assert leaked(on_disk) == [] and SECRET[:5].encode() not in on_disk  # no prefix left at a cut
    assert leaked(ledger_bytes(tmp_path)) == []
    assert leaked(caplog.text) == []
    assert leaked(export.getvalue()) == [] and leaked(csv_export.getvalue()) == []
    assert "***" in history[0].run_id and "***" in history[0].name
    messages = "\n".join(str(e.new_state.message) for e in history)
    assert "login refused: *** | " in messages
    assert leaked(repr([(e.new_state, e.new_state.result) for e in history])) == []


def test_the_html_report_holds_no_secret_even_from_the_live_flow(tmp_path, monkeypatch):
    """The report draws the graph from the flow object itself: its task names were never stored."""
    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", SECRET)
    flow = leaky_flow(SECRET)

    @task
    def use(x):
        return x

    with flow:
        use(next(t for t in flow.tasks if t.name.startswith("fetch-")))
    with EventStore(tmp_path / "ledger.db") as store:
        run_id = flow.run(store=store).context["run_id"]
        page = store.report(run_id, flow=flow)
    assert "fetch-***" in page and leaked(page) == []
    data = data_of(page)
    keys = [t["key"] for t in data["tasks"]]
    assert [[keys[a], keys[b]] for a, b in data["edges"]] == [["fetch-***-1", "use-1"]]


def test_a_secret_straddling_the_64_kib_cut_leaves_no_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", SECRET)

    @task
    def big():
        return "a" * (RESULT_LIMIT - 3) + SECRET + "tail"

    with EventStore(tmp_path / "ledger.db") as store:
        Flow("cut", [big]).run(store=store, run_id="cut")
        result = store.rebuild("cut").tasks["big-1"].result
        on_disk = ledger_bytes(tmp_path)
    assert leaked(on_disk) == [] and SECRET[:4].encode() not in on_disk
    assert result.endswith("a**") and result.size == RESULT_LIMIT + 6  # the cut falls in the mask


def test_every_value_of_the_secrets_file_is_masked_unread(tmp_path, monkeypatch):
    path = tmp_path / "secrets.toml"
    path.write_text(f'API = {json.dumps(SECRET)}\n[HEADERS]\nAuthorization = "Bearer hdr-55aa77cc"\n')
    os.chmod(path, 0o600)
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))

    @task
    def leak():
        raise RuntimeError(f"{SECRET} {quote(SECRET)} with Bearer hdr-55aa77cc")

    with EventStore(tmp_path / "ledger.db") as store:
        Flow("file", [leak]).run(store=store, run_id="file")
        on_disk = ledger_bytes(tmp_path)
    assert leaked(on_disk) == [] and leaked(on_disk, "Bearer hdr-55aa77cc") == []


def test_a_secret_registered_by_user_code_is_masked_from_then_on(tmp_path):
    vault_value = "vault-7e3d9c1b2a"

    @task
    def fetch_from_vault():
        register_secret(vault_value)  # what a user does with a value the library never saw
        return {"password": vault_value}

    @task
    def use(creds):
        raise ConnectionError(f"refused {creds['password']}")

    with Flow("vault") as flow:
        use(fetch_from_vault())
    with EventStore(tmp_path / "ledger.db") as store:
        flow.run(store=store, run_id="vault")
        assert store.rebuild("vault").tasks["fetch_from_vault-1"].result == {"password": "***"}
        assert leaked(ledger_bytes(tmp_path), vault_value) == []


def test_mapped_children_hold_no_secret(tmp_path, monkeypatch):
    """A map over values holding the secret: no child event (inputs, results) keeps it."""
    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", SECRET)

    @task
    def echo(value):
        return f"got {value}"

    with Flow("mapped") as flow:
        echo.map([f"a {SECRET}", f"b {SECRET}"])
    with EventStore(tmp_path / "ledger.db") as store:
        state = flow.run(store=store, run_id="m")
        assert state.is_successful()
        assert leaked(ledger_bytes(tmp_path)) == []
        results = [s.result for k, s in store.rebuild("m").tasks.items() if k.endswith("]")]
        assert sorted(results) == ["got a ***", "got b ***"]


def test_a_long_multiline_secret_is_masked_in_every_encoding(tmp_path):
    """A private key in the secrets file: thousands of characters, newlines escaped at each level."""
    key = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(os.urandom(48).hex() for _ in range(40)) + "\n-----END"
    register_secret(key)

    @task
    def leak():
        raise ValueError(every_encoding_message(key))

    with EventStore(tmp_path / "ledger.db") as store:
        Flow("pem", [leak]).run(store=store, run_id="pem")
        on_disk = ledger_bytes(tmp_path)
    assert leaked(on_disk, key) == []
    assert key.splitlines()[3].encode() not in on_disk


def test_register_secret_refuses_what_is_not_text():
    with pytest.raises(TypeError, match="secret's text"):
        register_secret(b"bytes")


def test_a_secret_shorter_than_four_characters_is_named_in_a_warning_not_masked(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STATELEDGER_SECRET_PIN", "q7z")
    with caplog.at_level(logging.WARNING, logger="stateledger"):
        EventStore(tmp_path / "ledger.db").close()
        register_secret("k2", name="SHORT")
    assert "Secret 'PIN' is shorter than 4 characters, so it is NOT masked" in caplog.text
    assert "Secret 'SHORT'" in caplog.text
    assert "q7z" not in caplog.text and "k2" not in caplog.text
    assert masking.mask("q7z k2") == "q7z k2"


def test_the_error_of_a_failed_commit_holds_no_secret(monkeypatch):
    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", SECRET)

    class Refusing:
        path = "/nowhere/ledger.db"

        def append(self, event):
            raise OSError(f"cannot write {event.old_state!r} {repr(repr(SECRET))}")

    with pytest.raises(LedgerError) as info:
        Flow(f"f-{SECRET}", [task(lambda: 1, name="one")]).run(store=Refusing(), run_id=f"r-{SECRET}")
    assert leaked(str(info.value)) == [] and "***" in str(info.value)


def test_errors_we_raise_mask_the_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", SECRET)
    with EventStore(tmp_path / "ledger.db") as store:
        with pytest.raises(StateLedgerError) as info:
            store.history(f"run-{SECRET}")
    assert leaked(str(info.value)) == [] and "run-***" in str(info.value)


def test_notifier_payloads_hold_no_secret(monkeypatch, tmp_path):
    from subscribers.notifiers import webhook_notifier

    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", SECRET)
    with http_receiver() as receiver:
        monkeypatch.setenv("STATELEDGER_SECRET_HOOK", receiver.url)

        @task(state_handlers=[webhook_notifier(webhook_secret="HOOK", only_states=[Failed])])
        def login():
            raise PermissionError(f"login refused: {every_encoding_message(SECRET)}")

        with EventStore(tmp_path / "ledger.db") as store:
            Flow("notify", [login]).run(store=store, run_id="notify")
        bodies = b"".join(r.body for r in receiver.requests)
    assert receiver.requests and b"login refused: ***" in bodies
    assert leaked(bodies) == []


# --- the command line ---------------------------------------------------------


def cli_module() -> str:
    """The module `python -m` runs as the CLI."""
    return "eventstore.cli"


FLOW_FILE = """
    import os
    from statemachine import Flow, task

    @task
    def login():
        token = os.environ["STATELEDGER_SECRET_API_TOKEN"]  # read directly, never through Secret
        raise PermissionError("login refused: " + os.environ["ENCODED"])

    flow = Flow("cli-leak", [login])


    def alert(obj, old_state, new_state):  # a handler tried in a replay, its error printed live
        raise RuntimeError("smtp said no to " + os.environ["ENCODED"])
"""


def sl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", cli_module(), *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)


def test_cli_output_holds_no_secret_live_or_read_back(tmp_path):
    (tmp_path / "leak.py").write_text(textwrap.dedent(FLOW_FILE))
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("STATELEDGER")}
    base.update(HOME=str(home), STATELEDGER_DB=str(tmp_path / "ledger.db"), COLUMNS="200",
                PYTHONPATH=str(ROOT), PYTHONIOENCODING="utf-8")
    with_secret = dict(base, STATELEDGER_SECRET_API_TOKEN=SECRET, ENCODED=every_encoding_message(SECRET))
    outputs = {}
    for name, args in (("run", ()), ("run --json", ("--json",))):
        result = sl("run", str(tmp_path / "leak.py"), "--run-id", f"{name[-4:]}-{SECRET}", *args,
                    env=with_secret)
        assert result.returncode == 1, result.stderr
        outputs[name] = result.stdout + result.stderr
    assert "login refused: ***" in outputs["run"]
    run_id = json.loads(sl("runs", "--json", env=base).stdout)[0]["run_id"]
    assert "***" in run_id
    for args in (("runs",), ("runs", "--json"), ("show", run_id), ("show", run_id, "--json"),
                 ("audit",), ("audit", "--json"), ("export",), ("export", "--format", "csv"),
                 ("replay", run_id), ("follow", "--from-start", "--count", "4"), ("verify",)):
        result = sl(*args, env=base)  # a reader without the secret in its environment
        assert result.returncode == 0, (args, result.stderr)
        outputs[" ".join(args)] = result.stdout + result.stderr
    assert "login refused: ***" in outputs[f"show {run_id}"] and "login refused: ***" in outputs["export"]
    for name, text in outputs.items():
        assert leaked(text) == [], (name, leaked(text))
    assert leaked(ledger_bytes(tmp_path)) == []
    for json_flag in ((), ("--json",)):
        args = ("replay", run_id, "--handler", "leak:alert", *json_flag)
        replayed = subprocess.run([sys.executable, "-m", cli_module(), *args], capture_output=True, text=True,
                                  env=dict(with_secret, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}"),
                                  timeout=120, cwd=tmp_path)
        assert replayed.returncode == 1 and "smtp said no to ***" in replayed.stdout, replayed.stderr
        assert leaked(replayed.stdout + replayed.stderr) == []
    failed = sl("show", f"run-{SECRET}", env=with_secret)  # an error line quoting the run id
    assert failed.returncode == 2 and leaked(failed.stderr) == [] and "run-***" in failed.stderr
