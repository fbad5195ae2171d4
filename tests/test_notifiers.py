"""Notifiers: the formatter without a network, each sender against a real server on 127.0.0.1,
as a state handler (a failure fails the task) and as a listener (a failure never touches the run)."""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import subprocess
import sys
import time
from email import message_from_string
from pathlib import Path

import pytest
from servers import closed_port, http_receiver, make_certificate, silent_server, smtp_server

from eventstore import EventStore
from statemachine import Flow, Task, secrets, task
from statemachine.errors import NotifierError, SecretNotFoundError
from statemachine.events import Event
from statemachine.states import Failed, Pending, Retrying, Running, State, Success
from statemachine.testing import ListLedger
from state_checks import exact
from subscribers import subscribe
from subscribers.durable import DurableSubscription
from subscribers.notifiers import (
    DeliveryError,
    DeliveryTimeout,
    Notice,
    NotifierConfigError,
    apprise_notifier,
    email_notifier,
    event_payload,
    format_text,
    slack_notifier,
    webhook_notifier,
)

T0 = datetime.datetime(2026, 11, 24, 9, 30, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(autouse=True)
def forget_secrets():
    secrets.forget_all()
    yield
    secrets.forget_all()


@pytest.fixture
def set_secret(monkeypatch):
    def set_(name, value):
        monkeypatch.setenv(f"STATELEDGER_SECRET_{name}", value)

    return set_


def an_event(new_state, old_state=None, **fields):
    values = dict(
        run_id="etl-20261124-abc", timestamp=T0, kind="task", name="load", key="load-1", attempt=1,
        old_state=old_state or Running("Starting task run."), new_state=new_state, flow="etl", seq=7,
        event_id="e7",
    )
    values.update(fields)
    return Event(**values)


def one_task_flow(body=None, **task_options):
    """A flow with one task ``work`` (that runs ``body``), run on an in-memory ledger."""

    @task(name="work", **task_options)
    def work():
        return body() if body else 42

    flow = Flow("notify-demo", tasks=[work])
    state = flow.run(store=ListLedger())
    return state, state.result[work]


# --- the formatter, no network ---------------------------------------------------------------


def test_default_text_names_the_task_its_flow_the_state_its_message_the_run_and_the_time():
    state = Failed("Error during execution of task: ValueError('boom')")
    text = format_text(Notice.from_event(an_event(state)))
    assert text == (
        "Task load (flow etl) is now Failed: Error during execution of task: ValueError('boom').\n"
        "Run etl-20261124-abc at 2026-11-24 09:30:00 UTC."
    )


def test_default_text_for_a_retry_says_when_it_runs_again():
    retry = Retrying("Retrying Task (after attempt 1 of 3)", start_time=T0 + datetime.timedelta(minutes=5), run_count=1)
    text = format_text(Notice.from_event(an_event(retry, old_state=Failed("x"))))
    assert "is now Retrying: Retrying Task (after attempt 1 of 3)." in text
    assert "It will run again at 2026-11-24 09:35:00 UTC." in text


def test_default_text_from_a_state_handler_has_no_run_id_but_the_time():
    text = format_text(Notice.from_handler(Task(name="load"), Pending(), Running("Starting task run.")))
    assert text.startswith("Task load is now Running: Starting task run.\nAt 20")
    assert text.endswith(" UTC.")


def test_default_text_for_a_flow():
    notice = Notice.from_handler(Flow("nightly"), Running("Running flow."), Success("All reference tasks succeeded."))
    assert format_text(notice).startswith("Flow nightly is now Success: All reference tasks succeeded.\n")


def test_template_fills_named_fields():
    notice = Notice.from_event(an_event(Failed("boom")))
    template = "{Kind} {name} [{key}] of {flow}: {old} -> {state} ({message}) run={run_id} at {time} #{attempt}"
    assert format_text(notice, template) == (
        "Task load [load-1] of etl: Running -> Failed (boom) run=etl-20261124-abc at 2026-11-24 09:30:00 UTC #1"
    )


def test_template_with_an_unknown_field_is_refused_naming_it_and_the_fields():
    with pytest.raises(NotifierConfigError, match=r"field \{task_name\}, which does not exist; the fields are: kind, Kind, name"):
        slack_notifier(template="{task_name} failed")


def test_only_states_and_ignore_states_include_subclasses():
    notifier = slack_notifier(only_states=[Failed], ignore_states=Retrying)
    assert notifier.wants(Failed("x")) and notifier.wants(Failed.__subclasses__()[0]("x"))
    assert not notifier.wants(Success()) and not notifier.wants(Running())
    assert not slack_notifier(ignore_states=[State]).wants(Success())


def test_a_state_filter_that_is_not_a_state_class_is_refused():
    with pytest.raises(NotifierConfigError, match="only_states= takes State classes .* got 'Failed'"):
        slack_notifier(only_states=["Failed"])


def test_a_bad_timeout_or_smtp_type_is_refused():
    with pytest.raises(NotifierConfigError, match="timeout= must be a positive number"):
        slack_notifier(timeout=0)
    with pytest.raises(NotifierConfigError, match="smtp_type= must be one of SSL, STARTTLS, INSECURE"):
        email_notifier(email_to="ops@example.org", smtp_type="TLS")
    with pytest.raises(NotifierConfigError, match="give both, or neither"):
        email_notifier(email_to="ops@example.org", username_secret="SMTP_USER")
    with pytest.raises(NotifierConfigError, match="needs webhook_secret="):
        webhook_notifier()


def test_called_with_one_positional_argument_is_a_clear_type_error():
    with pytest.raises(TypeError, match=r"slack_notifier\(obj, old_state, new_state\)"):
        slack_notifier(Task())


def test_the_event_payload_is_json_with_both_states_and_the_event_identity():
    retry = Retrying("again", start_time=T0, run_count=2)
    payload = event_payload(Notice.from_event(an_event(retry, old_state=Failed("x"), attempt=2)))
    assert json.loads(json.dumps(payload)) == payload
    assert payload["new_state"] == {"type": "Retrying", "message": "again", "start_time": T0.isoformat(), "run_count": 2}
    assert payload["old_state"] == {"type": "Failed", "message": "x"}
    assert (payload["run_id"], payload["flow"], payload["key"], payload["seq"], payload["attempt"]) == (
        "etl-20261124-abc", "etl", "load-1", 7, 2,
    )


def test_text_sent_never_holds_a_secret_value(set_secret):
    set_secret("API_KEY", "key-1234567")
    secrets.Secret("API_KEY").get()
    notice = Notice.from_event(an_event(Failed("rejected key-1234567")))
    assert "key-1234567" not in format_text(notice)
    assert "key-1234567" not in json.dumps(event_payload(notice))


# --- Slack ---------------------------------------------------------------------------------------


def test_slack_notifier_as_a_bare_handler_posts_every_transition_as_json_text(set_secret):
    with http_receiver() as receiver:
        set_secret("SLACK_WEBHOOK_URL", receiver.url)
        flow_state, state = one_task_flow(state_handlers=[slack_notifier])
    assert exact(state) == Success("Task run succeeded.", result=42)  # the handler returned new_state unchanged
    assert [(r.method, r.path) for r in receiver.requests] == [("POST", "/hook"), ("POST", "/hook")]
    assert all(r.headers["Content-Type"] == "application/json" for r in receiver.requests)
    bodies = [r.json() for r in receiver.requests]
    assert [list(b) for b in bodies] == [["text"], ["text"]]
    # a handler learns the run in progress from the engine
    assert bodies[0]["text"].startswith("Task work is now Running: Starting task run.\nRun notify-demo-")
    assert bodies[1]["text"].startswith("Task work is now Success: Task run succeeded.\nRun notify-demo-")


def test_slack_notifier_configured_posts_only_the_chosen_states_from_its_named_secret(set_secret):
    with http_receiver() as receiver:
        set_secret("OPS_SLACK", receiver.url)
        notifier = slack_notifier(only_states=[Failed], webhook_secret="OPS_SLACK", template="{name}: {message}")
        _, state = one_task_flow(lambda: 1 / 0, state_handlers=[notifier])
    assert state.is_failed()
    assert [r.json() for r in receiver.requests] == [
        {"text": "work: Error during execution of task: ZeroDivisionError('division by zero')"}
    ]


def test_slack_http_500_fails_the_task_naming_the_status_and_the_secret_not_the_url(set_secret):
    with http_receiver(status=500, body=b"no_service") as receiver:
        set_secret("SLACK_WEBHOOK_URL", receiver.url)
        _, state = one_task_flow(state_handlers=[slack_notifier])
    assert type(state) is Failed
    assert "slack_notifier raised DeliveryError" in state.message
    assert "Slack webhook (secret SLACK_WEBHOOK_URL) answered HTTP 500 Internal Server Error: no_service" in state.message
    assert receiver.url not in state.message
    assert isinstance(state.result, DeliveryError) and isinstance(state.result, NotifierError)
    assert state.result.status == 500


def test_slack_connection_refused_fails_the_task_naming_it(set_secret):
    set_secret("SLACK_WEBHOOK_URL", f"http://127.0.0.1:{closed_port()}/hook")
    _, state = one_task_flow(state_handlers=[slack_notifier])
    assert state.is_failed()
    assert "refused the connection" in state.message
    assert state.result.reason == "refused"


def test_slack_server_that_never_answers_times_out(set_secret):
    with silent_server() as url:
        set_secret("SLACK_WEBHOOK_URL", url)
        started = time.monotonic()
        with pytest.raises(DeliveryTimeout, match=r"did not answer within 0.5 s \(timeout=0.5\)"):
            slack_notifier(timeout=0.5)(Task(name="t"), Pending(), Running())
        assert time.monotonic() - started < 5


def test_missing_webhook_secret_fails_the_task_naming_the_secret():
    _, state = one_task_flow(state_handlers=[slack_notifier])
    assert state.is_failed()
    assert "SecretNotFoundError" in state.message
    assert "SLACK_WEBHOOK_URL" in state.message and "not found" in state.message
    assert isinstance(state.result, SecretNotFoundError)


def test_a_webhook_secret_that_is_not_an_http_url_is_refused_without_quoting_it(set_secret):
    set_secret("SLACK_WEBHOOK_URL", "file:///etc/passwd")
    with pytest.raises(NotifierConfigError, match="does not hold an http") as info:
        slack_notifier(Task(), Pending(), Running())
    assert "passwd" not in str(info.value)


# --- webhook -------------------------------------------------------------------------------------


def test_webhook_notifier_posts_the_committed_event_with_headers_from_a_secret(set_secret, tmp_path):
    with http_receiver() as receiver:
        set_secret("HOOK_URL", receiver.url)
        set_secret("HOOK_HEADERS", '{"Authorization": "Bearer t0ken-abc", "X-Team": "data"}')
        notifier = webhook_notifier(webhook_secret="HOOK_URL", headers_secret="HOOK_HEADERS", only_states=[Success])
        handle = subscribe(notifier.as_listener(), flow="notify-demo")
        try:
            flow_state, _ = one_task_flow()
        finally:
            handle.disconnect()
    assert len(receiver.requests) == 2  # the task's Success and the flow's Success
    request = receiver.requests[0]
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["Authorization"] == "Bearer t0ken-abc" and request.headers["X-Team"] == "data"
    body = request.json()
    assert body["run_id"] == flow_state.context["run_id"]
    assert (body["kind"], body["name"], body["key"], body["flow"], body["attempt"]) == ("task", "work", "work-1", "notify-demo", 1)
    assert body["old_state"] == {"type": "Running", "message": "Starting task run."}
    assert body["new_state"] == {"type": "Success", "message": "Task run succeeded."}
    assert isinstance(body["seq"], int) and body["event_id"]
    assert body["text"].endswith(f"Run {flow_state.context['run_id']} at {body['timestamp'][:10]} {body['timestamp'][11:19]} UTC.")
    assert receiver.requests[1].json()["kind"] == "flow"


def test_webhook_headers_can_be_a_table_in_the_secrets_file(tmp_path, monkeypatch):
    with http_receiver() as receiver:
        path = tmp_path / "secrets.toml"
        path.write_text(f'HOOK_URL = "{receiver.url}"\n[HOOK_HEADERS]\nAuthorization = "Bearer from-file"\n')
        path.chmod(0o600)
        monkeypatch.setenv("STATELEDGER_SECRETS_FILE", str(path))
        webhook_notifier(webhook_secret="HOOK_URL", headers_secret="HOOK_HEADERS")(Task(name="t"), Pending(), Running())
    assert receiver.requests[0].headers["Authorization"] == "Bearer from-file"


def test_webhook_headers_secret_that_is_not_a_json_object_is_refused(set_secret):
    set_secret("HOOK_URL", "http://127.0.0.1:9/hook")
    set_secret("HOOK_HEADERS", "Authorization: Bearer x")
    with pytest.raises(NotifierConfigError, match="'HOOK_HEADERS' must hold the headers as a JSON object"):
        webhook_notifier(webhook_secret="HOOK_URL", headers_secret="HOOK_HEADERS")(Task(), Pending(), Running())


# --- as listeners ----------------------------------------------------------------------------------


def test_as_a_listener_a_failed_delivery_is_logged_and_never_touches_the_run(set_secret, caplog):
    with http_receiver(status=500) as receiver:
        set_secret("SLACK_WEBHOOK_URL", receiver.url)
        handle = subscribe(slack_notifier(only_states=[Success]).as_listener())
        try:
            with caplog.at_level(logging.WARNING, logger="stateledger"):
                flow_state, state = one_task_flow()
        finally:
            handle.disconnect()
    assert flow_state.is_successful() and state.is_successful()
    assert len(receiver.requests) == 2
    warnings = [r.getMessage() for r in caplog.records if "slack_notifier could not deliver" in r.getMessage()]
    assert len(warnings) == 2 and "answered HTTP 500" in warnings[0]
    assert receiver.url not in caplog.text


def test_a_durable_subscription_retries_a_failed_delivery_until_it_is_delivered(set_secret, tmp_path):
    path = tmp_path / "ledger.db"
    with EventStore(path) as store:
        flow_state = Flow("notify-demo", tasks=[Task(name="work")]).run(store=store)
    run_id = flow_state.context["run_id"]
    with http_receiver(status=500) as failing:
        set_secret("SLACK_WEBHOOK_URL", failing.url)
        notifier = slack_notifier(only_states=[Success], template="{kind} {key} {state} {run_id}")
        with DurableSubscription("slack", notifier.as_durable_listener(), store=str(path)) as sub:
            with pytest.raises(DeliveryError, match="HTTP 500"):
                sub.catch_up()
            assert sub.cursor == 2  # events 1-2 needed no delivery; event 3 (the task's Success) is kept
    with http_receiver() as working:
        set_secret("SLACK_WEBHOOK_URL", working.url)
        with DurableSubscription("slack", notifier.as_durable_listener(), store=str(path)) as sub:
            sub.catch_up()
            assert sub.catch_up() == 0
    assert [r.json()["text"] for r in working.requests] == [
        f"task work-1 Success {run_id}",
        f"flow notify-demo Success {run_id}",
    ]


# --- email ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trust(certificate, monkeypatch):
    """Make the self-signed test certificate the trusted CA, the way a user's system CA store is."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    return certificate


def mail_of(box):
    assert len(box.messages) == 1
    return box.messages[0], message_from_string(box.messages[0]["content"])


def test_email_notifier_starttls_with_login_from_secrets_delivers_the_mail(trust, set_secret):
    set_secret("SMTP_USER", "alerts@example.org")
    set_secret("SMTP_PASSWORD", "pw-correct-horse")
    with smtp_server(cert=trust, accept_login=("alerts@example.org", "pw-correct-horse")) as (server, box):
        notifier = email_notifier(
            email_to=["ops@example.org", "dev@example.org"], only_states=[Failed], smtp_server="127.0.0.1",
            smtp_port=server.port, smtp_type="STARTTLS", username_secret="SMTP_USER", password_secret="SMTP_PASSWORD",
        )
        _, state = one_task_flow(lambda: 1 / 0, state_handlers=[notifier])
    assert state.is_failed() and "ZeroDivisionError" in state.message  # the task's own failure, delivered
    envelope, mail = mail_of(box)
    assert box.logins == [("alerts@example.org", "pw-correct-horse")]
    assert envelope["from"] == "alerts@example.org"
    assert envelope["to"] == ["ops@example.org", "dev@example.org"]
    assert mail["Subject"] == "[stateledger] Task work: Failed"
    assert "Task work is now Failed: Error during execution of task: ZeroDivisionError" in mail.get_payload()


def test_email_notifier_over_implicit_tls_delivers_the_mail(trust):
    with smtp_server(cert=trust, implicit_tls=True) as (server, box):
        email_notifier(
            email_to="ops@example.org", email_from="flows@example.org", smtp_server="127.0.0.1",
            smtp_port=server.port, smtp_type="SSL",
        )(Task(name="load"), Running(), Success("Task run succeeded."))
    envelope, mail = mail_of(box)
    assert (envelope["from"], mail["To"], mail["Subject"]) == ("flows@example.org", "ops@example.org", "[stateledger] Task load: Success")


def test_email_notifier_insecure_delivers_the_mail():
    with smtp_server() as (server, box):
        email_notifier(
            email_to="ops@example.org", smtp_server="127.0.0.1", smtp_port=server.port, smtp_type="INSECURE",
        )(Task(name="load"), Running(), Success("Task run succeeded."))
    _, mail = mail_of(box)
    assert mail.get_payload().startswith("Task load is now Success: Task run succeeded.")


def test_email_login_rejected_fails_the_task_naming_the_cause(trust, set_secret):
    set_secret("SMTP_USER", "alerts@example.org")
    set_secret("SMTP_PASSWORD", "pw-wrong-horse")
    with smtp_server(cert=trust, refuse_logins=True) as (server, box):
        notifier = email_notifier(
            email_to="ops@example.org", smtp_server="127.0.0.1", smtp_port=server.port, smtp_type="STARTTLS",
            username_secret="SMTP_USER", password_secret="SMTP_PASSWORD", timeout=5,
        )
        _, state = one_task_flow(state_handlers=[notifier])
    assert box.messages == [] and set(box.logins) == {("alerts@example.org", "pw-wrong-horse")}
    assert state.is_failed()
    assert f"SMTP server 127.0.0.1:{server.port} (STARTTLS) rejected the login of the user in secret SMTP_USER: 535" in state.message
    assert "pw-wrong-horse" not in state.message and state.result.reason == "smtp-login"


def test_email_to_a_closed_port_is_refused():
    notifier = email_notifier(email_to="ops@example.org", smtp_server="127.0.0.1", smtp_port=closed_port(), smtp_type="INSECURE")
    with pytest.raises(DeliveryError, match="refused the connection"):
        notifier(Task(), Pending(), Running())


def test_email_to_a_server_that_never_answers_times_out():
    with silent_server() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        notifier = email_notifier(
            email_to="ops@example.org", smtp_server="127.0.0.1", smtp_port=port, smtp_type="INSECURE", timeout=0.5
        )
        with pytest.raises(DeliveryTimeout, match=r"SMTP server 127.0.0.1:\d+ \(INSECURE\) did not answer within 0.5 s"):
            notifier(Task(), Pending(), Running())


def test_email_to_a_server_with_an_untrusted_certificate_fails_naming_tls(certificate):
    with smtp_server(cert=certificate, implicit_tls=True) as (server, box):
        notifier = email_notifier(email_to="ops@example.org", smtp_server="127.0.0.1", smtp_port=server.port)
        with pytest.raises(DeliveryError, match=r"\(SSL\): TLS failed .*CERTIFICATE_VERIFY_FAILED"):
            notifier(Task(), Pending(), Running())
    assert box.messages == []


# --- apprise ------------------------------------------------------------------------------------------


def test_apprise_notifier_reaches_a_json_service(set_secret):
    with http_receiver() as receiver:
        set_secret("APPRISE_URLS", receiver.url.replace("http://", "json://"))
        _, state = one_task_flow(lambda: 1 / 0, state_handlers=[apprise_notifier(only_states=[Failed])])
    assert state.is_failed() and "ZeroDivisionError" in state.message
    [request] = receiver.requests
    assert (request.method, request.path, request.headers["Content-Type"]) == ("POST", "/hook", "application/json")
    body = request.json()
    assert body["title"] == "[stateledger] Task work: Failed"
    assert body["message"].startswith("Task work is now Failed: Error during execution of task: ZeroDivisionError")
    assert body["type"] == "failure"


def test_apprise_service_answering_500_fails_the_task_naming_the_cause(set_secret):
    with http_receiver(status=500) as receiver:
        set_secret("APPRISE_URLS", receiver.url.replace("http://", "json://"))
        _, state = one_task_flow(state_handlers=[apprise_notifier])
    assert state.is_failed()
    assert "apprise (secret APPRISE_URLS) could not deliver the notification" in state.message
    assert "500" in state.message


def test_apprise_url_it_does_not_understand_is_refused_without_quoting_it(set_secret):
    set_secret("APPRISE_URLS", "nosuchservice://token-abcdef")
    with pytest.raises(NotifierConfigError, match="URL apprise does not understand \\(scheme 'nosuchservice'\\)") as info:
        apprise_notifier(Task(), Pending(), Running())
    assert "token-abcdef" not in str(info.value)


def test_apprise_missing_is_a_clear_error(set_secret, monkeypatch):
    set_secret("APPRISE_URLS", "json://127.0.0.1:9/hook")
    monkeypatch.setitem(sys.modules, "apprise", None)  # what `import apprise` sees when it is not installed
    with pytest.raises(NotifierConfigError, match="needs the 'apprise' package.*pip install apprise"):
        apprise_notifier(Task(), Pending(), Running())


# --- the webhook examples, with the URL from a secrets file or from the environment --------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("source", ["secrets-file", "env"])
@pytest.mark.parametrize("example", ["post_on_finish", "post_on_retry"])
def test_webhook_examples_post_with_the_secret_from(example, source, tmp_path):
    """Runs examples/<example>.py as a subprocess and compares its stdout and the bodies the
    webhook received with examples/<example>.expected ("<DATETIME>" matches a timestamp)."""
    folder = EXAMPLES
    expected = (folder / f"{example}.expected").read_text().splitlines()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STATELEDGER_", "SLACK_WEBHOOK_URL"))}
    home = tmp_path / "home2"
    home.mkdir()
    env.update(HOME=str(home), STATELEDGER_DB=str(tmp_path / "example.db"), PYTHONDONTWRITEBYTECODE="1")
    with http_receiver() as receiver:
        if source == "env":
            env["STATELEDGER_SECRET_SLACK_WEBHOOK_URL"] = receiver.url
        else:
            secrets_file = tmp_path / "secrets.toml"
            secrets_file.write_text(f'SLACK_WEBHOOK_URL = "{receiver.url}"\n')
            secrets_file.chmod(0o600)
            env["STATELEDGER_SECRETS_FILE"] = str(secrets_file)
        proc = subprocess.run(
            [sys.executable, str(folder / f"{example}.py")], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    posts = ["POST " + json.dumps(r.json()) for r in receiver.requests]
    got = posts + proc.stdout.splitlines()
    want = [line for line in expected if line.startswith("POST ")] + [l for l in expected if not l.startswith("POST ")]
    assert len(got) == len(want), (want, got)
    for w, g in zip(want, got):
        pattern = re_escape_datetime(w)
        assert pattern.fullmatch(g), (w, g)


def re_escape_datetime(line):
    stamp = r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?"
    return re.compile(re.escape(line).replace(re.escape("<DATETIME>"), stamp))


def test_a_notifier_can_be_tried_on_a_past_run_with_replay(set_secret, tmp_path):
    with EventStore(tmp_path / "ledger.db") as store:
        flow = Flow("notify-demo", tasks=[Task(name="work")])
        run_id = flow.run(store=store).context["run_id"]
        with http_receiver() as receiver:
            set_secret("SLACK_WEBHOOK_URL", receiver.url)
            as_handler = slack_notifier(only_states=[Success], template="handler: {Kind} {key} of {flow} {state}")
            as_listener = slack_notifier(only_states=[Success], template="listener: {key} {state} {run_id}")
            store.replay(run_id, as_listener.as_durable_listener(), handlers=[as_handler], kinds="task")
    assert [r.json()["text"] for r in receiver.requests] == [
        f"listener: work-1 Success {run_id}",
        "handler: Task work-1 of notify-demo Success",
    ]
