import pytest

from statemachine import graph
from statemachine import states as s

LEGAL = [
    (s.Pending, s.Running), (s.Pending, s.Skipped), (s.Pending, s.TriggerFailed), (s.Pending, s.Paused),
    (s.Pending, s.Failed), (s.Scheduled, s.Running), (s.Running, s.Success), (s.Running, s.Failed),
    (s.Running, s.TimedOut), (s.Running, s.Retrying), (s.Running, s.Skipped), (s.Failed, s.Retrying),
    (s.Retrying, s.Running), (s.Paused, s.Resume), (s.Resume, s.Running), (s.Running, s.Cached),
    # Prefect 1 lets a task body end its run pending: ENDRUN(Pending("later")).
    (s.Running, s.Pending), (s.Running, s.Looped), (s.Looped, s.Pending), (s.Pending, s.Mapped),
    (s.Running, s.Cancelling), (s.Cancelling, s.Cancelled), (s.Running, s.ValidationFailed),
    (s.Running, s.Crashed), (s.Paused, s.Crashed),
]
ILLEGAL = [
    (s.Success, s.Running), (s.Pending, s.Success), (s.Success, s.Failed), (s.Failed, s.Running),
    (s.Skipped, s.Running), (s.Running, s.Running), (s.Cancelled, s.Running), (s.Mapped, s.Running),
    (s.Crashed, s.Running), (s.Looped, s.Success), (s.Cancelling, s.Running),
    (s.TriggerFailed, s.Retrying), (s.Retrying, s.Success), (s.Scheduled, s.Success), (s.Pending, s.Finished),
]


def test_every_legal_edge_is_legal():
    edges = graph.legal_edges()
    assert len(edges) > 30
    for a, b in edges:
        assert graph.is_legal(s.STATE_CLASSES[a](), s.STATE_CLASSES[b]())


@pytest.mark.parametrize("old,new", LEGAL)
def test_known_legal_moves(old, new):
    assert graph.is_legal(old(), new())


@pytest.mark.parametrize("old,new", ILLEGAL)
def test_known_illegal_moves(old, new):
    assert not graph.is_legal(old(), new())


def test_user_subclasses_count_as_their_library_base():
    class Flaky(s.Failed):
        pass

    assert graph.is_legal(s.Running(), Flaky())
    assert not graph.is_legal(Flaky(), s.Running())


def test_mermaid_lists_every_edge():
    text = graph.mermaid()
    assert text.startswith("stateDiagram-v2\n")
    for a, b in graph.legal_edges():
        assert f"    {a} --> {b}\n" in text


def test_dot_lists_every_edge():
    text = graph.dot()
    assert text.startswith("digraph states {")
    assert "    Running -> Success;" in text and "Success -> Running" not in text
