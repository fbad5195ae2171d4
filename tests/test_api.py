"""The public API is DESIGN.md's contract; importing it has no side effects."""

import subprocess
import sys

import statemachine
import statemachine.states
import subscribers


def test_statemachine_exports_exactly_the_documented_names():
    assert sorted(statemachine.__all__) == sorted(
        ["Task", "Flow", "task", "Parameter", "Secret", "register_secret", "signals", "triggers", "unmapped",
         "flatten"])
    for name in statemachine.__all__:
        assert getattr(statemachine, name) is not None


def test_states_module_exports_every_state():
    expected = {"State", "Pending", "Scheduled", "Retrying", "Paused", "Resume", "Running", "Cancelling",
                "Finished", "Looped", "Success", "Cached", "Mapped", "Skipped", "Failed", "TriggerFailed",
                "TimedOut", "ValidationFailed", "Crashed", "Cancelled"}
    assert expected <= set(statemachine.states.__all__)


def test_subscribers_exports_the_documented_names():
    assert {"callback_factory", "subscribe", "add_state_handler"} <= set(subscribers.__all__)
    import subscribers.notifiers as notifiers

    for name in ("slack_notifier", "webhook_notifier", "email_notifier", "apprise_notifier"):
        assert callable(getattr(notifiers, name))


def test_eventstore_exports_the_store():
    import eventstore

    assert "EventStore" in eventstore.__all__


def test_eventstore_exports_exactly_its_public_names_and_each_module_lists_its_own():
    import importlib
    import pkgutil

    import eventstore

    assert sorted(eventstore.__all__) == sorted([
        "EventStore", "Event", "Recorder", "RunView", "TaskStates", "RunRecord", "Report", "Problem",
        "StandIn", "DescribedResult", "CutResult", "CutMessage", "default_path", "LedgerError", "NotALedgerError",
        "SchemaVersionError", "LedgerWriteError", "LedgerLocationError", "RunNotFoundError",
        "RunExistsError", "Orphan", "Reaped", "Checkpoint"])
    for info in pkgutil.walk_packages(eventstore.__path__, "eventstore."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        assert isinstance(getattr(module, "__all__", None), list), f"{info.name} has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{info.name}.__all__ names what it lacks: {missing}"


def test_signals_and_triggers_have_the_documented_members():
    from statemachine import signals, triggers

    for name in ("FAIL", "SUCCESS", "RETRY", "SKIP", "PAUSE", "TRIGGERFAIL", "VALIDATIONFAIL", "LOOP", "ENDRUN"):
        assert issubclass(getattr(signals, name), Exception)
    for name in ("all_successful", "all_failed", "any_successful", "any_failed", "all_finished",
                 "always_run", "manual_only", "some_failed", "some_successful", "not_all_skipped"):
        assert callable(getattr(triggers, name))
    assert triggers.always_run is triggers.all_finished


def test_the_core_imports_neither_sqlite_nor_blinker_and_touches_no_files(tmp_path):
    code = (
        "import sys, os\n"
        "import statemachine, statemachine.states, statemachine.graph\n"
        "from statemachine import Flow, Task, task, Parameter, Secret, signals, triggers\n"
        "bad = [m for m in ('sqlite3', 'blinker', 'sqlite_utils', 'eventstore', 'subscribers') if m in sys.modules]\n"
        "print(bad, os.listdir(os.environ['HOME']))\n"
    )
    home = tmp_path / "h"
    home.mkdir()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"HOME": str(home), "PATH": "/usr/bin:/bin", "STATELEDGER_DB": str(tmp_path / "x.db")})
    assert out.stdout.strip() == "[] []"


def test_importing_every_package_creates_no_ledger(tmp_path):
    code = "import statemachine, eventstore, subscribers, subscribers.notifiers; import os; print(os.path.exists(os.environ['STATELEDGER_DB']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "STATELEDGER_DB": str(tmp_path / "x.db")})
    assert out.stdout.strip() == "False"


# DESIGN.md's public API, package by package (and the README's durable subscriptions).
DOCUMENTED = {
    "statemachine": {"Task", "Flow", "task", "Parameter", "Secret", "signals", "triggers", "unmapped", "flatten",
                     "register_secret"},  # the README's secrets section
    "subscribers": {"callback_factory", "subscribe", "add_state_handler", "DurableSubscription",
                    "SubscriptionConflictError", "SubscriptionBusyError"},
    "subscribers.notifiers": {"slack_notifier", "webhook_notifier", "email_notifier", "apprise_notifier",
                              # what the README's notifier section uses besides the four
                              "Notifier", "Notice", "format_text", "format_title", "event_payload",
                              "TEMPLATE_FIELDS", "DeliveryError", "DeliveryTimeout", "NotifierConfigError"},
}


def test_every_public_package_exports_exactly_its_documented_names():
    import importlib

    for package, names in DOCUMENTED.items():
        module = importlib.import_module(package)
        assert sorted(module.__all__) == sorted(names), package
        assert len(module.__all__) == len(set(module.__all__)), package
        for name in module.__all__:
            assert getattr(module, name) is not None, (package, name)


def test_the_global_handler_registry_lives_in_the_core():
    import statemachine.handlers

    assert subscribers.add_state_handler is statemachine.handlers.add_state_handler
    assert subscribers.callback_factory is statemachine.handlers.callback_factory


def test_notifier_classes_keep_their_public_module_name():
    from subscribers.notifiers import DeliveryError, slack_notifier

    assert type(slack_notifier(only_states=[])).__module__ == "subscribers.notifiers"
    assert DeliveryError.__module__ == "subscribers.notifiers"
