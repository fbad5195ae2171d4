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


#: Every edge of the legal graph, written out by hand: a change to the graph shows up here.
EXPECTED_EDGES = {
    "Pending": ["Scheduled", "Retrying", "Paused", "Running", "Mapped", "Skipped", "Failed", "TriggerFailed",
                "Crashed", "Cancelled"],
    "Scheduled": ["Retrying", "Paused", "Running", "Mapped", "Skipped", "Failed", "TriggerFailed", "Crashed",
                  "Cancelled"],
    "Retrying": ["Running", "Failed", "Crashed", "Cancelled"],
    "Paused": ["Resume", "Running", "Failed", "Crashed", "Cancelled"],
    "Resume": ["Running", "Failed", "Crashed", "Cancelled"],
    # A task body may end its run in any state a signal or ENDRUN names (Prefect 1), pending ones too.
    "Running": ["Pending", "Scheduled", "Retrying", "Paused", "Resume", "Cancelling", "Looped", "Success", "Cached",
                "Mapped", "Skipped", "Failed", "TriggerFailed", "TimedOut", "ValidationFailed", "Crashed",
                "Cancelled"],
    "Cancelling": ["Success", "Failed", "Crashed", "Cancelled"],
    "Looped": ["Pending", "Failed", "Crashed", "Cancelled"],  # Pending: a LOOP's next iteration
    "Failed": ["Retrying", "Failed"],
    "TimedOut": ["Retrying", "Failed"],
    "ValidationFailed": ["Retrying", "Failed"],
}

def test_the_legal_edges_are_exactly_the_expected_ones():
    expected = {(a, b) for a, targets in EXPECTED_EDGES.items() for b in targets}
    edges = graph.legal_edges()
    assert len(edges) > 30
    assert len(edges) == len(set(edges))
    assert set(edges) == expected


def test_every_legal_edge_is_legal_and_every_other_pair_is_not():
    expected = {(a, b) for a, targets in EXPECTED_EDGES.items() for b in targets}
    names = [n for n in s.STATE_CLASSES if n not in ("State", "Finished")]
    for a in names:
        for b in names:
            legal = graph.is_legal(s.STATE_CLASSES[a](), s.STATE_CLASSES[b]())
            assert legal == ((a, b) in expected), (a, b)


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
