"""Loading user code for ``stateledger``: a flow from ``FILE[:FLOW]``, handlers from ``module:function``, ``--param``."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

from statemachine.errors import CommandInputError
from statemachine.flow import Flow

__all__ = ["parse_params", "load_flow", "load_handler"]


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["day=2024-06-01", "limit=10"]`` -> ``{"day": "2024-06-01", "limit": 10}`` (JSON when valid)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CommandInputError(
                f"--param {pair!r} is not KEY=VALUE; write it like --param day=2024-06-01 or --param limit=10"
            )
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return params


def load_flow(target: str) -> Any:
    """The flow in ``FILE[:FLOW]``: the only one, or the one FLOW names (variable or flow name)."""
    path, name = _split_target(target)
    module = _import_file(path)
    flows = {var: obj for var, obj in vars(module).items() if isinstance(obj, Flow)}
    if name is not None:
        if name in flows:
            return flows[name]
        named = [f for f in flows.values() if f.name == name]
        if len(set(map(id, named))) == 1:
            return named[0]
        found = ", ".join(sorted(flows)) or "none"
        raise CommandInputError(
            f"{path} has no flow named {name!r} (module variables holding a flow: {found})"
        )
    unique = list({id(f): f for f in flows.values()}.values())
    if not unique:
        raise CommandInputError(
            f"{path} defines no flow: create one at module level, e.g. `with Flow(\"etl\") as flow: ...`"
        )
    if len(unique) > 1:
        choices = ", ".join(f"{path}:{var}" for var in sorted(flows))
        raise CommandInputError(f"{path} defines {len(unique)} flows; name the one to run: {choices}")
    return unique[0]


def _split_target(target: str) -> tuple[str, str | None]:
    path, sep, name = target.rpartition(":")
    if sep and path and name and not os.path.exists(target):
        return path, name
    return target, None


def _import_file(path: str) -> Any:
    """Import ``path`` as a module named after the file (so handler names read ``etl.notify``)."""
    file = Path(path)
    if not file.is_file():
        raise CommandInputError(
            f"Flow file {path} does not exist (expected a Python file, e.g. examples/etl.py)"
        )
    name = re.sub(r"\W", "_", file.stem) or "flowfile"
    if name in sys.modules:  # never shadow a module already imported (a flow file named json.py)
        name = f"stateledger_flow_{name}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise CommandInputError(f"Flow file {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(file.resolve().parent))  # its sibling modules import as in `python FILE`
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise CommandInputError(
            f"Flow file {path} failed to import: {_where(exc, file)}{type(exc).__name__}: {exc} "
            "(--traceback shows the whole traceback)") from exc
    return module


def _where(exc: BaseException, file: Path) -> str:
    """``FILE:LINE: `` where the import failed: the flow file's last line in the traceback, else the last frame."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        same = Path(exc.filename).resolve() == file.resolve()
        return f"{file if same else exc.filename}:{exc.lineno}: "
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if Path(f.filename).resolve() == file.resolve()]
    if mine:
        return f"{file}:{mine[-1].lineno}: "
    return f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""


def load_handler(spec: str) -> Callable[..., Any]:
    """``module:function`` -> the function (the current directory is importable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CommandInputError(f"--handler {spec!r} is not module:function, e.g. --handler mynotify:alert")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandInputError(f"--handler {spec}: cannot import module {module_name!r} ({exc})") from exc
    except Exception as exc:
        raise CommandInputError(
            f"--handler {spec}: module {module_name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CommandInputError(f"--handler {spec}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise CommandInputError(f"--handler {spec}: {attr!r} is a {type(target).__name__}, not a function")
    return target
