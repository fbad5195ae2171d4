"""Event <-> stored row: the only module that knows the ledger's column order.

An event is stored as a *content row* (``ContentRow``: every field but
``seq``, ``prev_hash`` and ``hash``, states as JSON text through ``codec``)
and read back as a *stored row* (``StoredRow``: ``seq``, the content but its
``reason``, ``prev_hash``, ``hash``, then ``reason``). Both are named tuples:
code reads ``row.new_state``, never ``row[11]``. Each run's events form a hash
chain that covers every stored field (schema 2)::

    hash = sha256(prev_hash + canonical JSON of [seq, *hashed content])

The hashed content is the content row, without its last field ``reason`` when
that is ``None`` (``hashed_content``): ``reason`` (why a state was marked by
hand, schema version 2) comes after the other fields, so an event without one
hashes as if the column did not exist, and one with a reason has it hashed
(last). Every recorder, ``verify`` (its SQLite ``json_array`` fast path too),
imports and copies apply this one rule.

``chain_hash(prev_hash, row, seq)`` computes it; every recorder appends with
it and ``verify`` recomputes it. Rows written by schema 1 were hashed
without their seq (``chain_hash(prev_hash, row)``) and keep that hash: a
ledger remembers from which seq on the new rule holds (``HashRules``),
since recomputing old hashes would launder any tampering done before.
``Mapper`` turns events into content rows (masking every
stored text with the mask it was given, so a secret never reaches the ledger)
and stored rows back into events.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from statemachine.events import Event
from statemachine.states import STATE_CLASSES, State

from . import codec
from .errors import LedgerError

__all__ = [
    "CONTENT", "COLUMNS", "CONTENT_SLICE", "FINISHED_TYPES", "ContentRow", "StoredRow", "LatestRow", "RunRecord",
    "Mapper", "row_json", "chain_hash", "hashed_content", "stored_values", "check_continues", "run_record",
    "stored_row", "latest_row", "no_mask", "state_text", "row_bytes",
    "HASH_VERSION", "HashRules", "RunRow", "CheckpointRow", "fold_root", "VERIFY_FIELDS",
]


class ContentRow(NamedTuple):
    """The hashed content of an event, as stored text (states are ``codec`` JSON)."""

    event_id: str
    run_id: str
    timestamp: str  # ISO-8601 UTC
    kind: str  # "task" | "flow"
    name: str
    key: str
    flow: str
    attempt: int
    state: str  # the new state's library type name, e.g. "Failed" (an index for queries)
    old_state: str
    new_state: str
    proposed_state: str | None
    rewritten_by: str  # JSON list of handler names, "[]" when none
    actor: str | None
    reason: str | None = None  # why a state was marked by hand (``store.mark``); None for every other event


class StoredRow(NamedTuple):
    """A row as a recorder returns it: ``seq``, the content, then the chain's two hashes."""

    seq: int
    event_id: str
    run_id: str
    timestamp: str
    kind: str
    name: str
    key: str
    flow: str
    attempt: int
    state: str
    old_state: str
    new_state: str
    proposed_state: str | None
    rewritten_by: str
    actor: str | None
    prev_hash: str | None
    hash: str
    reason: str | None = None  # last: added by schema version 2

    @property
    def content(self) -> ContentRow:
        """The content of the row (what ``Recorder.append`` was given)."""
        return _content_row((*self[CONTENT_SLICE], self.reason))


class LatestRow(NamedTuple):
    """The last event of one task or flow in a run (what ``rebuild``/``state_at`` need)."""

    seq: int
    kind: str
    key: str
    name: str
    flow: str
    new_state: str


#: The hashed content of an event, in row order.
CONTENT: tuple[str, ...] = ContentRow._fields
_N_CONTENT = len(CONTENT)
#: A stored row: seq, the content, prev_hash, hash.
COLUMNS: tuple[str, ...] = StoredRow._fields

#: What ``Recorder.verify_rows`` yields before the content's JSON (``verify``'s fast path).
VERIFY_FIELDS: tuple[str, ...] = ("seq", "run_id", "timestamp", "kind", "flow", "state", "prev_hash", "hash")

#: Where the content but its ``reason`` lies in a stored row (``StoredRow.content``, for hot loops).
CONTENT_SLICE = slice(1, len(CONTENT))

#: ``state`` names that end a flow run (its ``ended`` time is set).
FINISHED_TYPES = frozenset(
    {"Finished", "Looped", "Success", "Cached", "Mapped", "Skipped", "Failed", "TriggerFailed", "TimedOut",
     "ValidationFailed", "Crashed", "Cancelled"}
)

#: Canonical JSON of a content row: ``codec.to_json``'s output (compact, deterministic),
#: without its circular-reference bookkeeping, which a flat row of str/int/None never needs.
row_json: Callable[[Any], str] = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, check_circular=False).encode
_sha256 = hashlib.sha256
#: orjson.dumps (the optional "fast" extra), None without orjson, False until the first row is hashed.
_fast_dumps: Any = False
_PLAIN = frozenset({str, int, type(None)})


def row_bytes(row: Sequence[Any]) -> bytes:
    """``row_json(row)`` in UTF-8: what the chain hashes.

    Written by orjson when it is installed and the row holds only str, int
    and None (what the mapper makes): for those, orjson writes exactly the
    characters json does (every code point is tested). Anything else -- a
    float, an int past 64 bits, a lone surrogate -- goes through json as always.
    """
    dumps = _fast_dumps if _fast_dumps is not False else _load_orjson()
    if dumps is not None and _PLAIN.issuperset(map(type, row)):
        try:
            return dumps(row if type(row) is tuple else tuple(row))
        except TypeError:  # orjson's JSONEncodeError: json decides, as without orjson
            pass
    return row_json(row).encode()


def _load_orjson() -> Any:
    """orjson's dumps, imported at the first hash rather than with eventstore (with the uuid it loads)."""
    global _fast_dumps
    try:
        from orjson import dumps
    except ImportError:
        dumps = None
    _fast_dumps = dumps
    return dumps

# Named rows made from a tuple of values in field order without NamedTuple's Python-level
# ``__new__``: recorders and the mapper build one per event, so these run in C.
_content_row: Callable[[Iterable[Any]], ContentRow] = functools.partial(tuple.__new__, ContentRow)
#: ``StoredRow`` of a row's values in ``COLUMNS`` order (what recorders call per row read).
stored_row: Callable[[Iterable[Any]], StoredRow] = functools.partial(tuple.__new__, StoredRow)
#: ``LatestRow`` of ``(seq, kind, key, name, flow, new_state)``.
latest_row: Callable[[Iterable[Any]], LatestRow] = functools.partial(tuple.__new__, LatestRow)


#: The hash rule new rows are written with: 2 covers ``seq`` too; 1 (schema 1) did not.
HASH_VERSION = 2


def chain_hash(prev_hash: str | None, row: Sequence[Any], seq: int | None = None) -> str:
    """The hash of a content row chained to the run's previous hash (``None``: the run starts).

    With ``seq`` (rule 2, what recorders write): ``sha256(prev_hash + JSON [seq, *row])``,
    so a renumbered event no longer matches. Without (rule 1, schema 1's rows):
    ``sha256(prev_hash + JSON row)``. A full content row without a ``reason``
    hashes as its other fields alone (see the module docstring); ``row`` may
    also be ``hashed_content`` of a stored row.
    """
    without_reason = len(row) == _N_CONTENT and row[-1] is None
    if seq is not None:  # one new tuple per row: every recorder hashes each event it appends
        row = (seq, *row[:-1]) if without_reason else (seq, *row)
    elif without_reason:
        row = row[:-1]
    return _sha256((prev_hash or "").encode() + row_bytes(row)).hexdigest()


def fold_root(root: str, hashes: Iterable[str]) -> str:
    """A checkpoint root extended by event hashes in seq order: ``root = sha256_hex(root + hash)`` each."""
    for h in hashes:
        root = _sha256((root + h).encode()).hexdigest()
    return root


class HashRules(NamedTuple):
    """Which rule each row of a ledger was hashed with (``Recorder.hash_rules``).

    ``v2_from``: rows with ``seq >= v2_from`` use rule 2 with their own seq
    (1 for a ledger created by schema 2; one past the last schema-1 row for a
    migrated one). ``exceptions``: ``seq -> (version, hashed seq or None)`` for
    rows appended with a hash made elsewhere (``import_jsonl``): rule 1, or rule
    2 over the seq the row had in the ledger it came from.
    """

    v2_from: int
    exceptions: dict[int, tuple[int, int | None]]

    def of(self, seq: int) -> tuple[int, int | None]:
        """``(version, seq the hash covers)`` of the row ``seq``."""
        found = self.exceptions.get(seq)
        if found is not None:
            return found
        return (2, seq) if seq >= self.v2_from else (1, None)


class RunRow(NamedTuple):
    """A row of the runs summary exactly as stored (``Recorder.run_rows``); times as ISO text."""

    run_id: str
    flow: str
    state: str
    started: str
    ended: str | None
    events: int
    first_seq: int
    last_seq: int
    last_hash: str


class CheckpointRow(NamedTuple):
    """A checkpoint as the ledger records it (``Recorder.checkpoints``); ``at`` as ISO text."""

    seq: int
    count: int
    root: str
    at: str
    signature: str | None


def hashed_content(row: StoredRow) -> tuple[Any, ...]:
    """What the chain hashes of a stored row: its content, ``reason`` only when set."""
    content = row[CONTENT_SLICE]
    return content if row.reason is None else (*content, row.reason)


def stored_values(row: ContentRow, prev_hash: str | None, hash: str) -> tuple[Any, ...]:
    """A stored row's values but its ``seq`` (``COLUMNS[1:]`` order) for a content row and its hashes."""
    return (*row[:-1], prev_hash, hash, row[-1])


def check_continues(where: str, row: ContentRow, last: str | None, prev_hash: str | None) -> None:
    """Refuse an imported row whose ``prev_hash`` is not the run's last hash (``LedgerError``)."""
    if (last or None) != (prev_hash or None):
        raise LedgerError(
            f"Cannot import event {row.event_id} of run {row.run_id} into ledger {where}: it follows hash "
            f"{prev_hash or '(none: the run starts here)'} but the ledger's run ends with "
            f"{last or '(nothing: the run is not in this ledger)'}. Import a run once, whole, into a "
            "ledger that does not hold it yet.", where)


@dataclass(slots=True, frozen=True)
class RunRecord:
    """One run as the runs summary keeps it: the flow's latest state, times and event count."""

    run_id: str
    flow: str
    state: str  # the flow's latest state type, e.g. "Running", "Failed"
    started: datetime.datetime
    ended: datetime.datetime | None
    events: int

    @property
    def finished(self) -> bool:
        return self.ended is not None


def run_record(run_id: str, flow: str, state: str, started: str, ended: str | None, events: int) -> RunRecord:
    """A ``RunRecord`` of the stored runs-summary columns (times as ISO text)."""
    return RunRecord(
        run_id, flow, state, datetime.datetime.fromisoformat(started),
        datetime.datetime.fromisoformat(ended) if ended else None, events,
    )


#: By (class, message, masker key): the whole text of a state without a result (key ends with None),
#: or, key ending with True, the text of a state with a plain result up to ``"result":``.
_memo: dict[tuple[type, Any, Any, Any], str] = {}
_encode_str = json.encoder.encode_basestring  # what codec.to_json does with a str
_MESSAGES = (str, type(None))
#: The library's state classes without extra fields: their text is message, result (and context).
_PLAIN_CLASSES = frozenset(cls for cls in STATE_CLASSES.values() if not cls.extra_fields)


def state_text(state: State, masker: Any = None) -> str:
    """``codec.state_to_json(state, masker)``, cheaper for the states a run commits most.

    A state with no context or extras and no result, or an int, a bool or a
    short ASCII str result (masked), is the text kept for its class and
    message (up to ``"result":``, then the result's JSON): the very characters
    of the full encoding (tested byte for byte), without building and
    encoding a dict.
    """
    return _state_text(state, masker, (masker, masker.generation) if masker else None)


def _state_text(state: State, masker: Any, mk: Any) -> str:
    """``state_text`` given the masker's memo key ``mk`` (``to_row`` makes it once per event)."""
    cls = type(state)
    # library classes only (a subclass may redefine ``context``), so the slot can be read instead of
    # the ``context`` property, which would make (and keep) an empty dict per state
    if cls not in _PLAIN_CLASSES or state._context or type(state.message) not in _MESSAGES:
        return codec.state_to_json(state, masker)
    result = state.result
    if result is None:
        key = (cls, state.message, mk, None)
        text = _memo.get(key)
        if text is None:
            text = codec.state_to_json(state, masker)
            if len(_memo) < 8192:
                _memo[key] = text
        return text
    if type(result) is int and result.bit_length() <= 64:
        value = int.__repr__(result)
    elif type(result) is bool:
        value = "true" if result else "false"
    elif type(result) is str and len(result) <= codec.RESULT_LIMIT and result.isascii():
        if masker is not None:
            result = masker.mask(result)
            # a mask function of one's own may make it longer, or not ASCII: the codec decides then
            if type(result) is not str or len(result) > codec.RESULT_LIMIT or not result.isascii():
                return codec.state_to_json(state, masker)
        value = _encode_str(result)
    else:
        return codec.state_to_json(state, masker)
    key = (cls, state.message, mk, True)
    head = _memo.get(key)
    if head is None:  # the first such state: encode it in full, and keep what precedes its result
        text = codec.state_to_json(state, masker)
        tail = f',"result":{value}}}'
        if text.endswith(tail) and len(_memo) < 8192:
            _memo[key] = text[: -len(tail)] + ',"result":'
        return text
    return f"{head}{value}}}"


def no_mask(text: str) -> str:
    """The identity: a mapper that masks nothing."""
    return text


class _TextMask:
    """A plain ``mask(text) -> text`` function seen as a masker: applied to whole texts."""

    generation = 0

    def __init__(self, mask: Callable[[str], str]) -> None:
        self.mask = mask

    def __bool__(self) -> bool:
        return self.mask is not no_mask

    def found_in(self, text: str) -> bool:
        return self.mask(text) != text

    def mask_data(self, data: Any) -> Any:
        if type(data) is str:
            return self.mask(data)
        if isinstance(data, dict):
            return {self.mask_data(k): self.mask_data(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return type(data)(self.mask_data(v) for v in data) if type(data) is tuple else [
                self.mask_data(v) for v in data]
        return data


class Mapper:
    """Events to content rows and stored rows back to events.

    ``mask`` hides secrets in every text stored: the states (masked *before*
    a long message or result is cut, so no prefix of a secret survives a cut),
    run id, names, key, flow, handler names and actor. Give a
    ``statemachine.masking.Masker`` (``EventStore`` passes the process's
    ``MASKER``: every encoding of every known secret, data masked field by
    field), or any ``mask(text) -> text`` function (applied to each text).
    An event's old state is usually the previous event's new state: its text
    is reused rather than encoded twice (a cache per run, dropped when the
    flow finishes or when a new secret becomes known).
    """

    def __init__(self, mask: Callable[[str], str] = no_mask) -> None:
        self.mask = mask
        self._masker: Any = mask if hasattr(mask, "mask_data") else _TextMask(mask)
        #: run_id -> key -> (state, its stored text, the masker's generation then)
        self._texts: dict[str, dict[str, tuple[State, str, int]]] = {}
        #: (the masker's generation, {plain text: its stored text}): run ids, names, keys, actors
        self._cleaned: tuple[int, dict[str, str]] = (-1, {})

    def clean(self, text: str) -> str:
        """A plain text (a run id, a host, an actor) as the ledger stores it: masked."""
        return codec.clean_text(text, self._masker if self._masker else None)

    def to_row(self, event: Event) -> ContentRow:
        """The content row of ``event`` (its texts masked)."""
        m, clean = self._masker, codec.clean_text
        generation = m.generation
        masker = m if m else None
        # the state texts' memo key, made once: the masker itself (an id() could be reused by a later one)
        mk = (m, generation) if masker is not None else None
        run_id, kind, obj_key = event.run_id, event.kind, event.key
        texts = self._texts.get(run_id)
        if texts is None:
            texts = self._texts[run_id] = {}
        key = obj_key if kind == "task" else "\x00flow"
        old, new = event.old_state, event.new_state
        cached = texts.get(key)
        old_text = cached[1] if cached is not None and cached[0] is old and cached[2] == generation \
            else _state_text(old, masker, mk)
        new_text = _state_text(new, masker, mk)
        proposed = event.proposed_state
        name, flow, actor = event.name, event.flow, event.actor
        if masker is not None or not (run_id.isascii() and name.isascii() and obj_key.isascii()
                                      and flow.isascii() and (actor is None or actor.isascii())):
            # something to mask, or a text that may hold a lone surrogate: clean_text (else it is a no-op)
            c = self._clean
            run_id, name, flow = c(run_id, masker, generation), c(name, masker, generation), c(flow, masker, generation)
            obj_key = c(obj_key, masker, generation)
            actor = c(actor, masker, generation) if actor is not None else None
        row = _content_row((
            event.event_id, run_id, codec.iso(event.timestamp), kind, name, obj_key, flow, event.attempt,
            codec.type_name(new), old_text, new_text,
            _state_text(proposed, masker, mk) if proposed is not None else None,
            codec.to_json([clean(n, masker) for n in event.rewritten_by]) if event.rewritten_by else "[]",
            actor, clean(event.reason, masker) if event.reason is not None else None,
        ))
        texts[key] = (new, new_text, generation)
        if kind == "flow" and new.is_finished():
            del self._texts[event.run_id]
        return row

    def _clean(self, text: str, masker: Any, generation: int) -> str:
        """``codec.clean_text(text, masker)``, memoised per masker generation.

        A run's id, flow, names and actor recur in every event: with a secret
        known, each would be scanned by the masker's expression again. A new
        secret bumps the generation, which drops every text cleaned before.
        """
        seen, cleaned = self._cleaned
        if seen != generation:
            cleaned = {}
            self._cleaned = (generation, cleaned)
        found = cleaned.get(text) if type(text) is str else None
        if found is None:
            found = codec.clean_text(text, masker)
            if type(text) is str:
                if len(cleaned) >= 4096:  # keys are unique per task: keep the memo small
                    cleaned.clear()
                cleaned[text] = found
        return found

    def forget(self, run_id: str) -> None:
        """Drop the text cache of a run (after a failed append, say)."""
        self._texts.pop(run_id, None)

    @staticmethod
    def to_events(rows: Iterable[Any]) -> list[Event]:
        """Events of stored rows, in the given order.

        An old state whose text is the object's previous new state reuses that
        State object, as in the live run (and is not decoded twice).
        """
        out: list[Event] = []
        append = out.append
        last: dict[str, tuple[str, State, str, str]] = {}  # key -> (text, state, run_id, kind)
        get = last.get
        from_json, parse, loads = codec.state_from_json, codec.parse_time, json.loads
        for (seq, event_id, run_id, ts, kind, name, key, flow, attempt, _state, old_t, new_t,
             proposed_t, rewritten_t, actor, prev_hash, hash_, reason) in rows:
            prev = get(key)
            if prev is not None and prev[0] == old_t and prev[2] == run_id and prev[3] == kind:
                old = prev[1]
            else:
                old = from_json(old_t)
            new = from_json(new_t)
            last[key] = (new_t, new, run_id, kind)
            append(Event(
                run_id, parse(ts), kind, name, key, attempt, old, new,
                from_json(proposed_t) if proposed_t is not None else None,
                tuple(loads(rewritten_t)) if rewritten_t != "[]" else (),
                actor, event_id, seq, prev_hash, hash_, flow, reason,
            ))
        return out
