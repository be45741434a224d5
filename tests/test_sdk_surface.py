"""The Python SDK's public surface, pinned: every name `pynenc_sidecar_sdk` exports, the public
methods and properties of its classes (and of `task.wf`, its executor and the in-process test
server), with their signatures. A change to any of them fails here until
tests/vectors/python_sdk_surface.json is rewritten on purpose (`python tests/test_sdk_surface.py
--write`) and the change is in CHANGELOG.md."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pynenc_sidecar_sdk
from pynenc_sidecar_sdk.testing import InProcessSidecar
from pynenc_sidecar_sdk.workflow import DeterministicExecutor, WorkflowContext

PINNED = Path(__file__).resolve().parent / "vectors" / "python_sdk_surface.json"
# Reached by users without being exported: `task.wf`, `task.wf.deterministic`, the testing server.
REACHABLE = {"pynenc_sidecar_sdk.workflow.WorkflowContext": WorkflowContext,
             "pynenc_sidecar_sdk.workflow.DeterministicExecutor": DeterministicExecutor,
             "pynenc_sidecar_sdk.testing.InProcessSidecar": InProcessSidecar}


def _member(value: Any) -> str:
    if isinstance(value, property):
        return "property"
    if isinstance(value, classmethod | staticmethod):
        return f"{type(value).__name__} {inspect.signature(value.__func__)}"
    if callable(value):
        return f"def {inspect.signature(value)}"
    return f"= {value!r}"


def _describe(obj: Any) -> dict[str, str] | str:
    if not inspect.isclass(obj):
        return f"def {inspect.signature(obj)}" if callable(obj) else repr(obj)
    members = {"__init__": f"def {inspect.signature(obj.__init__)}"} if "__init__" in vars(obj) else {}
    for klass in reversed(obj.__mro__[:-1]):  # inherited public members too, the nearest definition winning
        if klass.__module__.startswith("pynenc_sidecar_sdk"):
            members.update({name: _member(value) for name, value in vars(klass).items()
                            if not name.startswith("_") and not (inspect.isclass(value))})
    return dict(sorted(members.items()))


def surface() -> dict[str, Any]:
    exported = {f"pynenc_sidecar_sdk.{name}": getattr(pynenc_sidecar_sdk, name)
                for name in pynenc_sidecar_sdk.__all__}
    return {"__all__": sorted(pynenc_sidecar_sdk.__all__),
            **{name: _describe(obj) for name, obj in sorted({**exported, **REACHABLE}.items())}}


def test_the_public_sdk_surface_is_the_pinned_one() -> None:
    pinned = json.loads(PINNED.read_text())
    now = surface()
    changed = {name: {"pinned": pinned.get(name), "now": now.get(name)}
               for name in sorted(set(pinned) | set(now)) if pinned.get(name) != now.get(name)}
    assert not changed, (
        "the SDK's public surface changed; if on purpose, run `python tests/test_sdk_surface.py --write` "
        "and say so in CHANGELOG.md:\n" + json.dumps(changed, indent=1))


def test_the_surface_names_every_export_and_its_methods() -> None:
    now = surface()
    assert now["__all__"] == sorted(pynenc_sidecar_sdk.__all__)
    assert "run_workflow" in now["pynenc_sidecar_sdk.Pynenc"]  # a method, so the check reaches into classes
    assert now["pynenc_sidecar_sdk.workflow.WorkflowContext"]["utc_now"].startswith("def (self)")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    PINNED.write_text(json.dumps(surface(), indent=1, sort_keys=True) + "\n")
