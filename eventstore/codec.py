"""States to JSON-able data and back: what the ledger stores of a state.

A state becomes a small dict::

    {"type": "Failed", "message": "...", <result>, "start_time": "...", "run_count": 2,
     "context": {...}, "class": "mymodule.MyState"}

``type`` is the library's class name (for a user's own ``State`` subclass: its
nearest library base class, the subclass itself in ``class``). The result is
stored under exactly one of these keys:

``result``
    a JSON value, as it was (lossless for JSON data);
``result_tuple``
    a tuple of JSON values (a tuple comes back as a tuple);
``result_described``
    anything else, never pickled: ``{"type", "module", "repr", "str", "args",
    "attrs"}`` (``attrs``: the object's JSON-able attributes, e.g. a ``FAIL``
    signal's ``flag``; an argument or attribute longer than ``PART_LIMIT``
    characters of JSON is kept as a cut text, repr and str are cut to
    ``RESULT_LIMIT``). Builtin exceptions and ``statemachine.signals`` /
    ``statemachine.errors`` classes are rebuilt on decoding (so
    ``isinstance(state.result, TimeoutError)`` holds in a replay); anything
    else becomes a read-only ``DescribedResult``. ``NaN``/``±Infinity`` are
    described as ``{"type": "float", "repr": "nan"}`` (strict JSON; rebuilt
    as floats), an int too long to write in decimal as ``<int of about N digits>``;
``result_cut``
    a result whose JSON is longer than ``RESULT_LIMIT`` characters: its first
    ``RESULT_LIMIT`` characters of JSON are kept, decoded as ``CutResult``;
``result_flow``
    a flow's final result (``{Task: State}``, keys that are not strings) is not stored: the ledger holds
    each task's events, and ``EventStore.rebuild`` puts ``{key: State}`` back.

A message longer than ``MESSAGE_LIMIT`` characters keeps its first
``MESSAGE_LIMIT`` and ``message_cut`` records its full length (decoded as a
``CutMessage``). Whatever a state holds, it encodes: a raising ``__repr__``
is described as such, a lone surrogate (``os.fsdecode`` of a non-UTF-8 file
name) is written as a JSON ``\\udcxx`` escape (so the text is valid UTF-8 and
decodes to the same string).

Given a ``masker`` (``statemachine.masking.Masker``), every text is masked
*before* anything is cut: a secret straddling a cut leaves no prefix behind.

A failure keeps its traceback in ``"traceback"`` (masked, the last ``PART_LIMIT`` characters).

Times are ISO-8601 UTC strings. Every JSON text the ledger stores is produced
by ``to_json`` (compact, deterministic) so the hash chain can be recomputed
from the stored text alone.
"""

from __future__ import annotations

import builtins
import datetime
import json
import math
import re
from typing import Any

from statemachine import errors as sm_errors
from statemachine import signals as sm_signals
from statemachine.states import STATE_CLASSES, State, utcnow
from statemachine.tracebacks import keep_end, set_stored_traceback, traceback_of

from .times import iso, parse_time

__all__ = [
    "RESULT_LIMIT", "PART_LIMIT", "encode_state", "decode_state", "state_to_json", "state_from_json",
    "to_json", "describe", "DescribedResult", "CutResult", "CutMessage", "MESSAGE_LIMIT",
    "clean_text", "iso", "parse_time", "type_name", "type_name_of_class", "utcnow",
]

#: Results whose JSON is longer than this many characters are cut (64 KiB).
RESULT_LIMIT = 64 * 1024

#: Messages longer than this many characters are cut (64 KiB).
MESSAGE_LIMIT = RESULT_LIMIT

#: Compact, deterministic, strict JSON (the hash chain hashes these texts): NaN raises ValueError.
to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode

_SURROGATE = re.compile("[\ud800-\udfff]")

_SCALARS = (str, int, float, bool)
#: Modules whose exception classes are rebuilt from their description.
_REBUILT_MODULES = {
    "builtins": builtins,
    "statemachine.signals": sm_signals,
    "statemachine.errors": sm_errors,
}


# --- results that are not JSON -------------------------------------------------


class DescribedResult:
    """A stored result that was not JSON: its type, repr, str, args and attributes.

    Read-only; ``repr()`` is the original's repr and ``str()`` its str. The
    original's JSON-able attributes are attributes here too.
    """

    __slots__ = ("type", "module", "args", "attrs", "_repr", "_str")

    def __init__(self, data: dict[str, Any]) -> None:
        set_ = object.__setattr__
        set_(self, "type", data.get("type", "?"))
        set_(self, "module", data.get("module", "?"))
        set_(self, "args", tuple(data.get("args") or ()))
        set_(self, "attrs", dict(data.get("attrs") or {}))
        set_(self, "_repr", data.get("repr", ""))
        set_(self, "_str", data.get("str", ""))

    def __getattr__(self, name: str) -> Any:
        attrs = object.__getattribute__(self, "attrs")
        if name in attrs:
            return attrs[name]
        raise AttributeError(
            f"The stored {object.__getattribute__(self, 'type')} result has no attribute {name!r} "
            f"(stored attributes: {', '.join(attrs) or 'none'})"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a result read back from the ledger is read-only")

    def __repr__(self) -> str:
        return self._repr

    def __str__(self) -> str:
        return self._str

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DescribedResult):
            return (self.type, self.module, self._repr, self.attrs) == (
                other.type, other.module, other._repr, other.attrs,
            )
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.type, self._repr))

    def describe(self) -> dict[str, Any]:
        """The stored description, as it is in the ledger."""
        return {
            "type": self.type, "module": self.module, "repr": self._repr, "str": self._str,
            "args": list(self.args), "attrs": dict(self.attrs),
        }


class CutResult(str):
    """The first ``RESULT_LIMIT`` characters of a result's JSON; ``size`` is the full length."""

    size: int

    def __new__(cls, head: str, size: int) -> "CutResult":
        obj = super().__new__(cls, head)
        obj.size = size
        return obj

    def __repr__(self) -> str:
        return f"<result cut: {self.size} characters of JSON, first {len(self)} kept>"


class CutMessage(str):
    """The first ``MESSAGE_LIMIT`` characters of a longer message; ``size`` is the full length."""

    size: int

    def __new__(cls, head: str, size: int) -> "CutMessage":
        obj = super().__new__(cls, head)
        obj.size = size
        return obj


def clean_text(text: str, masker: Any = None) -> str:
    """A plain stored text (a run id, a name): masked, lone surrogates written as ``\\udcxx``."""
    if masker:
        text = masker.mask(text)
    if not text.isascii() and _SURROGATE.search(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _jsonable(value: Any) -> bool:
    try:
        to_json(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


#: An attribute or argument of a described result is kept whole up to this many characters of JSON.
PART_LIMIT = 16 * 1024


def _part(value: Any, masker: Any = None) -> Any:
    """``value`` if it is JSON of a modest size; else its repr, cut to ``PART_LIMIT`` (masked first)."""
    try:
        text = to_json(value)
    except (TypeError, ValueError, RecursionError):
        return _masked(_safe(repr, value), masker)[:PART_LIMIT]
    if masker and masker.found_in(text):
        value = masker.mask_data(value)
        text = to_json(value)
    if len(text) > PART_LIMIT:
        return f"<cut: {len(text)} characters of JSON> " + text[:PART_LIMIT]
    return value


def _safe(fn: Any, obj: Any) -> str:
    try:
        text = fn(obj)
        if type(text) is not str:
            raise TypeError(f"{fn.__name__} returned {type(text).__name__}")
        return text
    except Exception as exc:  # a broken __repr__ must not break the ledger
        if isinstance(obj, int) and isinstance(exc, ValueError):
            return f"<int of about {_digits(obj)} digits>"
        return f"<unrepresentable {type(obj).__name__}: {fn.__name__} raised {type(exc).__name__}>"


def _digits(n: int) -> int:
    """About how many decimal digits ``n`` has (without writing it out)."""
    return int(abs(n).bit_length() * math.log10(2)) + 1


def _masked(text: str, masker: Any) -> str:
    return masker.mask(text) if masker else text


def describe(obj: Any, masker: Any = None) -> dict[str, Any]:
    """A JSON-able description of any object: type, module, repr, str, args, attributes.

    Texts are masked by ``masker`` (if given) before they are cut.
    """
    cls = type(obj)
    data: dict[str, Any] = {
        "type": cls.__qualname__,
        "module": cls.__module__,
        "repr": _masked(_safe(repr, obj), masker)[:RESULT_LIMIT],
        "str": _masked(_safe(str, obj), masker)[:RESULT_LIMIT],
    }
    args = getattr(obj, "args", None) if isinstance(obj, BaseException) else None
    if isinstance(args, tuple):
        data["args"] = [_part(a, masker) for a in args]
    attrs = {}
    try:
        found = dict(getattr(obj, "__dict__", None) or {})
    except Exception:  # a __dict__ / __getattr__ that raises: describe without attributes
        found = {}
    for name, value in found.items():
        if isinstance(name, str) and not name.startswith("_") and _jsonable(value):
            attrs[_masked(name, masker)] = _part(value, masker)
    if attrs:
        data["attrs"] = attrs
    return data


def _rebuild(data: dict[str, Any]) -> Any:
    """The original exception when its class is a builtin or ours, else a DescribedResult."""
    if data.get("module") == "builtins" and data.get("type") == "float":
        return float(data.get("repr", "nan"))  # NaN and ±Infinity, kept as strings
    module = _REBUILT_MODULES.get(data.get("module", ""))
    cls = getattr(module, data.get("type", ""), None) if module is not None else None
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        return DescribedResult(data)
    args = data.get("args", ())
    try:
        try:
            obj = cls(*args)
        except Exception:  # a constructor that wants other arguments (e.g. ENDRUN(state))
            obj = cls.__new__(cls)
            BaseException.__init__(obj, *args)
        for name, value in (data.get("attrs") or {}).items():
            setattr(obj, name, value)
    except Exception:
        return DescribedResult(data)
    return obj


# --- states --------------------------------------------------------------------


def _special(value: Any) -> dict[str, Any] | None:
    """The typed description of a float or int JSON cannot hold, else None."""
    if type(value) is float and not math.isfinite(value):
        return {"type": "float", "module": "builtins", "repr": repr(value), "str": str(value)}
    if type(value) is int and value.bit_length() > 14_000:  # past 4,300 digits Python will not write it
        try:
            to_json(value)
        except ValueError:
            text = f"<int of about {_digits(value)} digits>"
            return {"type": "int", "module": "builtins", "repr": text, "str": text, "digits": _digits(value)}
    return None


def _encode_result(result: Any, data: dict[str, Any], masker: Any = None) -> None:
    if type(result) in _SCALARS:
        special = _special(result)
        if special is not None:
            data["result_described"] = special
            return
        if type(result) is str:
            result = _masked(result, masker)
            if len(result) > RESULT_LIMIT:
                _cut(to_json(result), data)
                return
        data["result"] = result
        return
    if (isinstance(result, dict) and result and all(isinstance(v, State) for v in result.values())
            and not any(isinstance(k, str) for k in result)):
        data["result_flow"] = True  # a flow's {Task: State}: rebuilt from the task events
        return
    if isinstance(result, (dict, list, tuple)) and not isinstance(result, BaseException):
        try:
            text = to_json(result)
        except (TypeError, ValueError, RecursionError):
            text = None
        if text is not None:
            if masker and masker.found_in(text):
                result = masker.mask_data(result)
                text = to_json(result)
            if len(text) > RESULT_LIMIT:
                _cut(text, data)
            elif type(result) is tuple:
                data["result_tuple"] = list(result)
            else:
                data["result"] = result
            return
    data["result_described"] = describe(result, masker)


def _cut(text: str, data: dict[str, Any]) -> None:
    data["result_cut"] = {"size": len(text), "head": text[:RESULT_LIMIT]}


_type_names: dict[type, str] = {cls: name for name, cls in STATE_CLASSES.items()}


def type_name_of_class(cls: type) -> str:
    """The name of ``cls``'s nearest library State class (itself, for the library's own)."""
    name = _type_names.get(cls)
    if name is None:
        name = next(c.__name__ for c in cls.__mro__ if STATE_CLASSES.get(c.__name__) is c)
        _type_names[cls] = name
    return name


def type_name(state: State) -> str:
    """The stored ``state`` name of a State (see ``type_name_of_class``)."""
    return _type_names.get(type(state)) or type_name_of_class(type(state))


def encode_state(state: State, masker: Any = None) -> dict[str, Any]:
    """A JSON-able dict of ``state``: type, message, result, extra fields, context.

    ``masker`` (a ``statemachine.masking.Masker``) masks every text before anything is cut.
    """
    cls = type(state)
    data: dict[str, Any] = {"type": type_name_of_class(cls)}
    if STATE_CLASSES.get(cls.__name__) is not cls:  # a user's subclass: name it too
        data["class"] = f"{cls.__module__}.{cls.__qualname__}"
    if state.message is not None:
        _encode_message(state.message, data, masker)
    if state.result is not None:
        _encode_result(state.result, data, masker)
    for field in cls.extra_fields:
        value = getattr(state, field, None)
        if isinstance(value, datetime.datetime):
            value = iso(value)
        elif isinstance(value, list) and value and isinstance(value[0], State):  # Mapped.map_states
            data[field] = [encode_state(s, masker) for s in value]
            continue
        data[field] = _plain(value, masker)
    trace = traceback_of(state) if state.result is not None and state.is_failed() else None
    if trace is not None:
        data["traceback"] = keep_end(_masked(trace, masker), PART_LIMIT)
    if state.context:
        data["context"] = {
            _masked(k, masker): _plain(v, masker) for k, v in state.context.items() if isinstance(k, str)
        }
    return data


def _encode_message(message: Any, data: dict[str, Any], masker: Any) -> None:
    """A message (masked, then cut at ``MESSAGE_LIMIT``); a message that is not text is its str."""
    if type(message) is not str:
        if type(message) in (int, bool) and _jsonable(message):
            data["message"] = message
            return
        message = _safe(str, message)
    message = _masked(message, masker)
    if len(message) > MESSAGE_LIMIT:
        data["message_cut"] = len(message)
        message = message[:MESSAGE_LIMIT]
    data["message"] = message


def _plain(value: Any, masker: Any) -> Any:
    """A context value or extra field: JSON as it is (masked), anything else described."""
    if _jsonable(value):
        return masker.mask_data(value) if masker else value
    return {"described": describe(value, masker)}


def decode_state(data: dict[str, Any]) -> State:
    """The State of an ``encode_state`` dict (a flow's result stays None: see module doc)."""
    cls = STATE_CLASSES.get(data.get("type", ""), State)
    context = data.get("context")
    message = data.get("message")
    if "message_cut" in data and isinstance(message, str):
        message = CutMessage(message, data["message_cut"])
    state = cls(message, context=dict(context) if context else None)
    if "result" in data:
        state.result = data["result"]
    elif "result_described" in data:
        state.result = _rebuild(data["result_described"])
    elif "result_tuple" in data:
        state.result = tuple(data["result_tuple"])
    elif "result_cut" in data:
        cut = data["result_cut"]
        state.result = CutResult(cut.get("head", ""), cut.get("size", 0))
    for field in cls.extra_fields:
        value = data.get(field)
        if field == "start_time" and isinstance(value, str):
            value = parse_time(value)
        elif field == "map_states" and isinstance(value, list):
            value = [decode_state(s) for s in value]
        setattr(state, field, value)
    if "traceback" in data:
        set_stored_traceback(state, data["traceback"])
    return state


#: Texts of states with no result, extras or context, by (class, message).
_simple_texts: dict[tuple[type, str | None, Any], str] = {}


def state_to_json(state: State, masker: Any = None) -> str:
    """``to_json(encode_state(state, masker))``, memoised for the common result-less states.

    It never raises for what a state holds: should the full encoding fail, the
    state is stored as its type, its message and a description of its result.
    """
    if (state.result is None and not state.context and not type(state).extra_fields
            and type(state.message) in (str, type(None))):
        # the masker itself, not its id(): the memo keeps it alive, so a later masker never takes its place
        key = (type(state), state.message, (masker, masker.generation) if masker else None)
        text = _simple_texts.get(key)
        if text is None:
            text = _state_text(state, masker)
            if len(_simple_texts) < 4096:
                _simple_texts[key] = text
        return text
    return _state_text(state, masker)


def _state_text(state: State, masker: Any) -> str:
    try:
        text = to_json(encode_state(state, masker))
    except Exception as exc:  # the last resort: whatever the state holds, the transition commits
        data = {"type": type_name(state), "message": _masked(_safe(str, state.message), masker),
                "result_described": describe(state.result, masker),
                "unencodable": f"{type(exc).__name__} while encoding this state"}
        text = to_json(data)
    if not text.isascii() and _SURROGATE.search(text):  # JSON's \udcxx escape: same string back
        text = _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


_scan = json.JSONDecoder().scan_once  # json.loads without its two whitespace regexes
#: Decoded dicts of short state texts whose values are all immutable (shared safely).
_decoded: dict[str, dict[str, Any]] = {}
_IMMUTABLE = (type(None), str, int, float, bool)


def state_from_json(text: str) -> State:
    """The State of a ``state_to_json`` text."""
    data = _decoded.get(text)
    if data is None:
        try:
            data = _scan(text, 0)[0]
        except StopIteration:
            raise ValueError(f"not a stored state: {text[:80]!r}") from None
        if len(text) < 200 and len(_decoded) < 4096 and "context" not in data and type(data.get("result")) in _IMMUTABLE:
            _decoded[text] = data
    return decode_state(data)
