"""Secrets: from the environment or a private TOML file, and masked wherever they could leak."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from statemachine import Flow, Secret, task
from statemachine import secrets
from statemachine.errors import SecretNotFoundError
from statemachine.secrets import SecretsFileError, mask


@pytest.fixture(autouse=True)
def forget_secrets():
    """Each test starts with no remembered secret (masking is process-wide)."""
    secrets.forget_all()
    yield
    secrets.forget_all()


def write_secrets(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_secret_is_read_from_its_environment_variable(monkeypatch):
    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", "tok-from-env")
    assert Secret("API_TOKEN").get() == "tok-from-env"


def test_secret_is_read_from_the_secrets_file_named_by_the_environment(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "s.toml", 'API_TOKEN = "tok-from-file"\n')
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
    assert Secret("API_TOKEN").get() == "tok-from-file"


def test_default_secrets_file_is_in_the_home_folder(isolated_home):
    write_secrets(isolated_home / ".stateledger" / "secrets.toml", 'API_TOKEN = "tok-in-home"\n')
    assert Secret("API_TOKEN").get() == "tok-in-home"


def test_environment_wins_over_the_secrets_file(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "s.toml", 'API_TOKEN = "tok-from-file"\n')
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
    monkeypatch.setenv("STATELEDGER_SECRET_API_TOKEN", "tok-from-env")
    assert Secret("API_TOKEN").get() == "tok-from-env"


def test_missing_secret_names_the_secret_the_variable_and_the_file(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "s.toml", 'OTHER = "x-value"\n')
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
    with pytest.raises(SecretNotFoundError) as info:
        Secret("API_TOKEN").get()
    message = str(info.value)
    assert "'API_TOKEN'" in message
    assert "STATELEDGER_SECRET_API_TOKEN" in message
    assert str(path) in message and "no key 'API_TOKEN'" in message
    assert info.value.name == "API_TOKEN"
    assert info.value.looked_in == ("env:STATELEDGER_SECRET_API_TOKEN", f"file:{path}")
    assert isinstance(info.value, KeyError)  # the error tree says so


def test_missing_secret_without_a_file_says_the_file_does_not_exist(isolated_home):
    with pytest.raises(SecretNotFoundError) as info:
        Secret("API_TOKEN").get()
    default = isolated_home / ".stateledger" / "secrets.toml"
    assert f"{default} (no such file)" in str(info.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_secrets_file_readable_by_others_is_refused_with_the_fix(tmp_path, monkeypatch, mode):
    path = write_secrets(tmp_path / "s.toml", 'API_TOKEN = "tok-from-file"\n', mode=mode)
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
    with pytest.raises(SecretsFileError) as info:
        Secret("API_TOKEN").get()
    assert f"mode is {mode:o}" in str(info.value)
    assert f"chmod 600 {path}" in str(info.value)
    assert "tok-from-file" not in str(info.value)
    assert info.value.path == str(path)


def test_secrets_file_that_is_not_toml_is_refused_naming_it(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "s.toml", "API_TOKEN = tok-without-quotes\n")
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
    with pytest.raises(SecretsFileError, match="not valid TOML") as info:
        Secret("API_TOKEN").get()
    assert str(path) in str(info.value)


def test_secret_that_is_not_a_string_is_refused(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "s.toml", "PORT = 25\n")
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
    with pytest.raises(SecretsFileError, match="'PORT' .* is a int; it must be a string"):
        Secret("PORT").get()


def test_secret_table_is_returned_as_json_and_each_value_masked(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "s.toml", '[HOOK_HEADERS]\nAuthorization = "Bearer abc123xyz"\n')
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
    assert json.loads(Secret("HOOK_HEADERS").get()) == {"Authorization": "Bearer abc123xyz"}
    assert mask("sent Bearer abc123xyz") == "sent ***"


def test_secrets_file_edited_between_reads_is_read_again(tmp_path, monkeypatch):
    path = write_secrets(tmp_path / "s.toml", 'API_TOKEN = "first-value"\n')
    monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
    assert Secret("API_TOKEN").get() == "first-value"
    write_secrets(path, 'API_TOKEN = "second-value-longer"\n')
    assert Secret("API_TOKEN").get() == "second-value-longer"


def test_mask_is_a_no_op_before_any_secret_is_read():
    text = "nothing secret here: hunter22"
    assert mask(text) is text


def test_mask_replaces_every_secret_value_read(monkeypatch):
    monkeypatch.setenv("STATELEDGER_SECRET_A", "alpha-secret")
    monkeypatch.setenv("STATELEDGER_SECRET_B", "beta-secret")
    Secret("A").get()
    Secret("B").get()
    assert mask("a=alpha-secret b=beta-secret alpha-secret") == "a=*** b=*** ***"
    assert mask("unrelated") == "unrelated"


def test_mask_covers_the_value_as_json_and_repr_escape_it(monkeypatch):
    value = 'pa"ss\\wörd\'x'
    monkeypatch.setenv("STATELEDGER_SECRET_P", value)
    Secret("P").get()
    exc_text = repr(ValueError(f"login failed with {value}"))
    assert value not in mask(exc_text) and "***" in mask(exc_text)
    for dumped in (json.dumps({"m": exc_text}), json.dumps({"m": value}), json.dumps({"m": value}, ensure_ascii=False)):
        assert "***" in mask(dumped)
        assert "ss\\" not in mask(dumped).replace("\\\\", "")  # no fragment of the value left


def test_values_shorter_than_four_characters_are_not_masked(monkeypatch):
    monkeypatch.setenv("STATELEDGER_SECRET_PIN", "abc")
    assert Secret("PIN").get() == "abc"
    assert mask("abc def") == "abc def"


def test_log_filter_is_not_installed_at_import():
    code = (
        "import logging, statemachine, subscribers, subscribers.notifiers, eventstore;"
        "print(len(logging.getLogger('stateledger').filters))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_logs_mask_secret_values_in_messages_arguments_and_tracebacks(monkeypatch, caplog):
    monkeypatch.setenv("STATELEDGER_SECRET_DB_PASSWORD", "s3cr3t-pw")
    password = Secret("DB_PASSWORD").get()
    log = logging.getLogger("stateledger")
    with caplog.at_level(logging.INFO, logger="stateledger"):
        log.info("connecting with %s", password)
        log.warning(f"inline {password}")
        try:
            raise RuntimeError(f"refused {password}")
        except RuntimeError:
            log.exception("failed")
    assert "s3cr3t-pw" not in caplog.text
    assert [r.getMessage() for r in caplog.records] == ["connecting with ***", "inline ***", "failed"]
    assert "RuntimeError: refused ***" in caplog.text  # the traceback is kept, masked


def test_task_whose_exception_holds_a_secret_leaves_no_trace_in_the_ledger_bytes_or_logs(
    tmp_path, monkeypatch, caplog
):
    """The secret reaches a task's exception, a handler's exception and a listener's: the
    ledger file (and its -wal) and the captured logs hold only ``***``."""
    from eventstore import EventStore
    from subscribers import subscribe

    value = "tok-9f8e7d6c-5b4a"
    monkeypatch.setenv("STATELEDGER_SECRET_TOKEN", value)

    @task
    def leaky():
        raise ValueError(f"server said no to {Secret('TOKEN').get()}")

    def loud_handler(obj, old, new):
        if new.is_running():
            raise RuntimeError(f"handler saw {Secret('TOKEN').get()}")

    @task(state_handlers=[loud_handler])
    def second():
        return 1

    def loud_listener(event):
        raise RuntimeError(f"listener saw {Secret('TOKEN').get()}")

    path = tmp_path / "ledger.db"
    handle = subscribe(loud_listener, task="leaky")
    try:
        with caplog.at_level(logging.DEBUG, logger="stateledger"):
            with Flow("leaky-flow") as flow:
                leaky()
                second()
            with EventStore(path) as store:
                state = flow.run(store=store)
                stored = [e.new_state.message for e in store.history(state.context["run_id"])]
                raw = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    finally:
        handle.disconnect()
    assert state.is_failed()
    assert value.encode() not in raw and b"tok-9f8e" not in raw
    assert b"server said no to ***" in raw  # the message was stored, masked
    assert "Error during execution of task: ValueError('server said no to ***')" in stored
    assert any(m and "handler saw ***" in m for m in stored)
    assert value not in caplog.text
    assert "handler saw ***" in caplog.text and "listener saw ***" in caplog.text
