"""The Redis key layout both Redis stores share (executor_store.py and state_backend_store.py
describe the keys each one writes). Ids are percent-escaped (core.positions.escape), so no id
can reach another's keys; everything of one workflow or invocation shares its hash tag."""

from __future__ import annotations

from pynenc_sidecar.core.positions import escape, unescape

PREFIX = "psc"
APP_IDS_KEY = f"{PREFIX}:app_ids"  # set: apps that stored a run (what a retention sweep visits)
APPS_KEY = f"{PREFIX}:apps"  # hash: app id -> app info payload (discovery, all apps)


def workflow_tag(app_id: str, workflow_id: str) -> str:
    """The hash-tagged prefix of a workflow's (or an invocation's) keys."""
    return f"{PREFIX}:{{{escape(app_id)}:{escape(workflow_id)}}}"


def app_tag(app_id: str) -> str:
    """The hash-tagged prefix of an app's index keys."""
    return f"{PREFIX}:{{{escape(app_id)}}}"


def task_key(app_id: str, invocation_id: str) -> str:
    return workflow_tag(app_id, invocation_id) + ":task"


def invocation_key(app_id: str, invocation_id: str, suffix: str) -> str:
    """A StateBackend key of one invocation (or workflow): under the app's tag, with the app's
    other StateBackend keys, so each StateBackend write is one slot on Redis Cluster."""
    return f"{app_tag(app_id)}:{suffix}:{escape(invocation_id)}"


def runs_key(app_id: str, workflow_type: str = "") -> str:
    """The run index of the app, or of one workflow type of it."""
    tag = app_tag(app_id)
    return f"{tag}:runs:{escape(workflow_type)}" if workflow_type else tag + ":runs"


def run_keys(app_id: str, workflow_type: str) -> list[str]:
    """The keys indexing a run (all of the app's tag), in run_index.DROP_RUN's KEYS order."""
    return [runs_key(app_id), runs_key(app_id, workflow_type), app_tag(app_id) + ":wf_types"]


# A task scope other than the workflow's main task is mirrored in the workflow's record hash
# (its task hash has a tag of its own, which a record or commit script cannot read on a
# cluster): its status (the finished-scope guard), lease id (commit.lua's fence) and the
# task's transition version (task.lua's 'ver': an older mirror never overwrites a newer).
def scope_status_field(invocation_id: str) -> str:
    return "#f:" + escape(invocation_id)


def scope_lease_field(invocation_id: str) -> str:
    return "#l:" + escape(invocation_id)


def scope_version_field(invocation_id: str) -> str:
    return "#v:" + escape(invocation_id)


def parse_task_key(key: str) -> tuple[str, str] | None:
    """(app id, invocation id) of a task hash key, or None for another key."""
    if not (key.startswith(PREFIX + ":{") and key.endswith("}:task")):
        return None
    app, sep, invocation = key[len(PREFIX) + 2:-len("}:task")].partition(":")
    return (unescape(app), unescape(invocation)) if sep else None


def glob_escape(text: str) -> str:
    """Make text match itself literally in a Redis MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def app_pattern(app_id: str) -> str:
    """A MATCH pattern for every key of the app and no other app's."""
    # Every key of the app has the escaped app id right after "{", followed by "}" (app
    # keys) or ":" (workflow/invocation keys); escaped ids hold neither.
    return f"{glob_escape(PREFIX)}:{{{glob_escape(escape(app_id))}[:}}]*"


TASK_KEY_PATTERN = f"{PREFIX}:{{*}}:task"  # every task hash, of every app
