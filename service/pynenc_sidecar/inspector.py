"""`pynenc-sidecar inspect` and `pynenc-sidecar workflows`: what a workflow recorded, read
straight from the store the server uses (Redis or the SQLite file), as aligned text tables
or JSON.

They read the store, not the server's gRPC API: they work with the server stopped, need no
new RPCs, and see what the server would (the SQLite file is shared safely: WAL readers never
block the server). They only read; `purge` and `retry` write. The reads are MaintenanceEngine's
(maintenance_engine.py); this module opens the store for the CLI and shows what they return.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pynenc_sidecar.core.dispatch import DispatchState
from pynenc_sidecar.core.errors import Unavailable
from pynenc_sidecar.core.positions import BASE_TIME_FIELD, DATA_NOT_FOUND, ORIGIN_PREFIX, Kind, Position
from pynenc_sidecar.core.tasks import TaskCall, TaskState, WorkflowRef
from pynenc_sidecar.maintenance_engine import MaintenanceEngine, RunListing, StateBackendInvocation, WorkflowSnapshot
from pynenc_sidecar.server import DEFAULT_DATA_FILE, StartupError, Stores, open_stores
from pynenc_sidecar_proto.v1 import common_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OPERATION_NAMES = {Kind.RANDOM: "random", Kind.TIME: "utc_now", Kind.UUID: "uuid", Kind.TASK: "task",
                    Kind.DATA_READ: "data_read", Kind.DATA_WRITE: "data_write"}
MAX_CELL = 60  # text tables cut longer values (JSON output never does)


class ToolError(Exception):
    """The tool cannot do what was asked; the message says why (exit status 1)."""


# --- opening the store ---------------------------------------------------------------------
async def open_existing_stores(settings) -> Stores:
    """The server's stores, for a tool: never creates a data file, and fails with a clear
    message when the store cannot be reached."""
    if not settings.redis_url:
        path = Path(settings.data_file or DEFAULT_DATA_FILE).expanduser().resolve()
        if not path.is_file():
            raise ToolError(f"no data file at {path}: pass the server's --data-file (or --redis-url), "
                            "or run this in the server's working directory")
    try:
        stores = await open_stores(settings.server_settings())
    except StartupError as exc:
        raise ToolError(str(exc)) from None
    try:
        await stores.store.ping()
    except Unavailable as exc:
        await stores.close()
        raise ToolError(f"cannot reach the store ({stores.description}): {exc}") from None
    return stores


def maintenance_engine(stores: Stores) -> MaintenanceEngine:
    """The tools' use cases on the opened stores."""
    return MaintenanceEngine(stores.store, stores.state_backend)


# --- formatting helpers --------------------------------------------------------------------
def iso(us: int | None, *, precise: bool = True) -> str | None:
    if not us:
        return None
    return (_EPOCH + timedelta(microseconds=us)).isoformat(
        timespec="microseconds" if precise else "milliseconds").replace("+00:00", "Z")


def status_name(status: int) -> str:
    try:
        return common_pb2.InvocationStatus.Name(status).removeprefix("INVOCATION_STATUS_")
    except ValueError:
        return str(status)


def _json_or_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())  # one line per row
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def table(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> str:
    """Plain aligned columns; the last column is not padded."""
    cells = [headers] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
        lines.append((indent + "  ".join(padded)).rstrip())
    return "\n".join(lines)


# --- inspect -------------------------------------------------------------------------------
def _operation(workflow_id: str, pos: Position, value: str, origin: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "scope": pos.scope,
        "main_task": pos.scope == workflow_id,
        "operation": _OPERATION_NAMES.get(pos.kind, "custom"),
        "name": pos.name,
        "sequence": pos.sequence,
    }
    if pos.kind is Kind.RANDOM:
        entry["value"] = float(value)
    elif pos.kind is Kind.TIME:
        entry["value"], entry["value_us"] = iso(int(value)), int(value)
    elif pos.kind is Kind.TASK:
        call = TaskCall.decode(value)
        entry["value"] = {"invocation_id": call.invocation_id, "task_id": call.task_id,
                          "arguments": _json_or_text(call.arguments_json),
                          "force_new_workflow": call.force_new_workflow, "dispatched": call.dispatched}
    elif pos.kind is Kind.UUID:
        entry["value"] = value
    elif pos.kind is Kind.DATA_READ:  # what the read returned; found=False: the key had no value
        entry["found"] = value != DATA_NOT_FOUND
        entry["value"] = _json_or_text(value) if entry["found"] else None
    else:
        entry["value"] = _json_or_text(value)
    if origin:
        entry["origin"] = origin
    return entry


def _task(state: TaskState) -> dict[str, Any]:
    error = _json_or_text(state.error_json)
    return {
        "invocation_id": state.invocation_id,
        "task_id": state.task_id,
        "arguments": _json_or_text(state.arguments_json),
        "status": status_name(state.status),
        "workflow": identity_json(state.workflow),
        "parent_invocation_id": state.parent_invocation_id or None,
        "result": _json_or_text(state.result_json),
        "error": error if error != "" else None,
        "runner_id": state.runner_id or None,
        "lease_expires_at": iso(state.lease_expire_us) if not state.finished else None,
        "finished_at": iso(state.finished_us),
    }


def identity_json(ref: WorkflowRef) -> dict[str, Any]:
    return {"workflow_id": ref.workflow_id, "workflow_type": ref.workflow_type or None,
            "parent_workflow_id": ref.parent_workflow_id or None}


def workflow_report(snapshot: WorkflowSnapshot) -> dict[str, Any]:
    """Everything known about one workflow (MaintenanceEngine.workflow_snapshot), JSON-ready."""
    workflow_id, fields, states, runs, main = (snapshot.workflow_id, snapshot.fields, snapshot.states,
                                               snapshot.runs, snapshot.main)
    # Scopes in the order their tasks were called, the main task's first.
    scope_rank = {workflow_id: (0, 0, "")}
    for pos, call in sorted(snapshot.calls.items(), key=lambda item: (item[0].scope != workflow_id,
                                                                      item[0].sequence)):
        scope_rank.setdefault(call.invocation_id, (1, pos.sequence, call.invocation_id))
    positions = sorted(snapshot.positions, key=lambda item: (scope_rank.get(item[0].scope, (2, 0, item[0].scope)),
                                                             item[0].kind, item[0].name, item[0].sequence))
    identity = main.workflow if main else (runs[0].workflow if runs else WorkflowRef(workflow_id))
    operations = [_operation(workflow_id, pos, value, fields.get(ORIGIN_PREFIX + pos.field))
                  for pos, value in positions]
    tasks = [_task(states[i]) for i in snapshot.task_ids if i in states]
    children = [identity_json(s.workflow) | {"status": status_name(s.status), "finished_at": iso(s.finished_us)}
                for s in states.values() if s.workflow.workflow_id not in (workflow_id, "")
                and s.workflow.workflow_id == s.invocation_id]
    base = fields.get(BASE_TIME_FIELD)
    return {
        "app_id": snapshot.app_id,
        "workflow": identity_json(identity),
        "status": status_name(main.status) if main else None,
        "started_at": iso(min(run.first_us for run in runs)) if runs else None,
        "finished_at": iso(main.finished_us) if main else None,
        "base_time": iso(int(base)) if base else None,
        "runs": [identity_json(run.workflow) | {"started_at": iso(run.first_us)} for run in runs],
        "child_workflows": children,
        "operations": operations,
        "tasks": tasks,
        "data": {key: _json_or_text(value) for key, value in sorted(snapshot.data.items())},
        "dispatched_tasks": [_dispatched(state, dispatch, snapshot.now_us) for state, dispatch in snapshot.dispatched],
        "state_backend_invocations": [_sb_invocation(i) for i in snapshot.state_backend_invocations],
    }


def _dispatched(state: TaskState, dispatch: DispatchState, now_us: int) -> dict[str, Any]:
    """A dispatched invocation: a queued one with its age, a running one with its attempt and runner."""
    queued = dispatch.queued_us if dispatch.queued_us and not state.finished else 0
    return {
        "invocation_id": state.invocation_id, "task_id": state.task_id, "status": status_name(state.status),
        "attempt": dispatch.attempt, "queued_since": iso(queued), "age_seconds":
            round(max(now_us - queued, 0) / 1e6, 1) if queued else None,
        "schedule_to_start_deadline": iso(dispatch.schedule_deadline_us()) if queued else None,
        "runner_id": state.runner_id or None, "last_error": _json_or_text(dispatch.last_error_json)}


def _sb_invocation(invocation: StateBackendInvocation) -> dict[str, Any]:
    record, history = invocation.record, invocation.history
    last = _json_or_text(history[-1].payload) if history else {}
    last_status = last.get("status", "") if isinstance(last, dict) else ""
    return {
        "invocation_id": invocation.invocation_id,
        "parent_invocation_id": (record.parent_invocation_id or None) if record else None,
        "status": last_status.removeprefix("INVOCATION_STATUS_") or None,
        "history_entries": len(history),
        "result": _json_or_text(invocation.result),
        "exception": _json_or_text(invocation.exception),
    }


def _operation_cells(op: dict[str, Any], names: dict[str, str]) -> list[Any]:
    short_id = op["scope"] if len(op["scope"]) <= 12 else op["scope"][:8] + "…"
    scope = "main" if op["main_task"] else f"{names.get(op['scope'], '?')} [{short_id}]"
    name = op["operation"] + (f" {op['name']}" if op["operation"] in ("custom", "data_read", "data_write") else "")
    value = op["value"]
    if op["operation"] == "task":
        value = f"{value['task_id']}({_compact(value['arguments'])}) -> {value['invocation_id']}" + (
            " (own workflow)" if value["force_new_workflow"] else "")
    elif op["operation"] == "utc_now":
        value = iso(op["value_us"], precise=False)
    elif op["operation"] == "data_read" and not op["found"]:
        value = "(not found)"
    elif op["operation"] in ("custom", "data_read", "data_write"):
        value = _compact(value)
    return [scope, name, op["sequence"], value]


def render_workflow(report: dict[str, Any]) -> str:
    wf = report["workflow"]
    out = [f"Workflow {wf['workflow_id']} (app {report['app_id']})"]
    facts = [("type", wf["workflow_type"]), ("parent workflow", wf["parent_workflow_id"]),
             ("status", report["status"]), ("started at", _short(report["started_at"])),
             ("finished at", _short(report["finished_at"])), ("base time", _short(report["base_time"]))]
    out += [f"  {label + ':':<17}{value if value else '-'}" for label, value in facts]

    out += ["", f"Runs ({len(report['runs'])})"]
    if report["runs"]:
        out.append(table(["WORKFLOW ID", "TYPE", "PARENT", "STARTED AT"],
                         [[r["workflow_id"], r["workflow_type"], r["parent_workflow_id"], _short(r["started_at"])]
                          for r in report["runs"]]))
    if report["child_workflows"]:
        out += ["", f"Child workflows ({len(report['child_workflows'])})",
                table(["WORKFLOW ID", "TYPE", "STATUS", "FINISHED AT"],
                      [[c["workflow_id"], c["workflow_type"], c["status"], _short(c["finished_at"])]
                       for c in report["child_workflows"]])]

    names = {t["invocation_id"]: t["task_id"] for t in report["tasks"]}
    ops = report["operations"]
    out += ["", f"Recorded operations ({len(ops)})"]
    if ops:
        with_origin = any("origin" in op for op in ops)
        headers = ["SCOPE", "OPERATION", "SEQ", "VALUE"] + (["ORIGIN (TRACE/SPAN)"] if with_origin else [])
        out.append(table(headers, [_operation_cells(op, names) + ([op.get("origin")] if with_origin else [])
                                   for op in ops]))

    out += ["", f"Tasks ({len(report['tasks'])})"]
    if report["tasks"]:
        rows = []
        for t in report["tasks"]:
            own = t["workflow"]["workflow_id"]
            where = "this" if own == wf["workflow_id"] else own
            outcome = _compact(t["result"]) if t["status"] == "SUCCESS" else (
                _compact(t["error"]) if t["error"] is not None else None)
            rows.append([t["invocation_id"], t["task_id"], _compact(t["arguments"]), t["status"], where, outcome,
                         _short(t["finished_at"])])
        out.append(table(["INVOCATION", "TASK", "ARGUMENTS", "STATUS", "WORKFLOW", "RESULT / ERROR", "FINISHED AT"],
                         rows))

    waiting = report.get("dispatched_tasks", [])
    if waiting:
        out += ["", f"Dispatched tasks ({len(waiting)})",
                table(["INVOCATION", "TASK", "STATUS", "ATTEMPT", "QUEUED SINCE", "AGE", "RUNNER"],
                      [[d["invocation_id"], d["task_id"], d["status"], d["attempt"], _short(d["queued_since"]),
                        f"{d['age_seconds']} s" if d["age_seconds"] is not None else None, d["runner_id"]]
                       for d in waiting])]

    out += ["", f"Data ({len(report['data'])})"]
    if report["data"]:
        out.append(table(["KEY", "VALUE"], [[k, _compact(v)] for k, v in report["data"].items()]))

    failed = [t for t in report["tasks"] if isinstance(t["error"], dict)]
    if failed:
        out += ["", f"Errors ({len(failed)})"]
        for t in failed:
            error = t["error"]
            out.append(f"  {t['invocation_id']} {t['task_id']}: {error.get('type', '?')}: {error.get('message', '')}")
            trace = (error.get("traceback") or "").rstrip()
            out += ["    " + line for line in trace.splitlines()] if trace else ["    (no traceback recorded)"]

    if report["state_backend_invocations"]:
        sb = report["state_backend_invocations"]
        out += ["", f"StateBackend invocations ({len(sb)})",
                table(["INVOCATION", "PARENT", "STATUS", "HISTORY", "RESULT / EXCEPTION"],
                      [[i["invocation_id"], i["parent_invocation_id"], i["status"], i["history_entries"],
                        _compact(i["result"]) if i["result"] is not None else _compact(i["exception"])
                        if i["exception"] is not None else None] for i in sb])]
    return "\n".join(out) + "\n"


def _short(text: str | None) -> str | None:
    """Text tables show times to the millisecond."""
    if not text:
        return None
    head, _, tail = text.partition(".")
    return f"{head}.{tail[:3]}Z" if tail else text


# --- workflows -----------------------------------------------------------------------------
def workflows_report(listing: RunListing) -> dict[str, Any]:
    """An app's runs (MaintenanceEngine.workflow_runs), JSON-ready."""
    report: dict[str, Any] = {
        "app_id": listing.app_id,
        "workflow_type": listing.workflow_type or None,
        "types": [{"workflow_type": t, "runs": n} for t, n in listing.runs_by_type.items()],
        "total_runs": listing.total_runs,
        "runs": [identity_json(run.workflow) | {
            "started_at": iso(run.first_us),
            "status": status_name(main.status) if main else None,
            "finished_at": iso(main.finished_us) if main else None,
        } for run, main in listing.runs],
    }
    if listing.apps_with_runs is not None:
        report["apps_with_runs"] = listing.apps_with_runs
    return report


def render_workflows(report: dict[str, Any]) -> str:
    app, wanted = report["app_id"], report["workflow_type"]
    if not report["total_runs"]:
        what = f"no runs of type {wanted!r}" if wanted else "no workflow runs"
        others = [a for a in report.get("apps_with_runs", []) if a != app]
        hint = f" (apps with runs: {', '.join(others)})" if others else ""
        return f"{what} in app {app!r}{hint}\n"
    out = [f"Workflow types in app {app!r} ({len(report['types'])})",
           table(["TYPE", "RUNS"], [[t["workflow_type"], t["runs"]] for t in report["types"]]), ""]
    shown = len(report["runs"])
    title = f"Runs ({report['total_runs']}, oldest first" + (
        f"; the last {shown} shown)" if shown < report["total_runs"] else ")")
    out.append(title)
    if report["runs"]:
        out.append(table(["WORKFLOW ID", "TYPE", "PARENT", "STARTED AT", "STATUS", "FINISHED AT"],
                         [[r["workflow_id"], r["workflow_type"], r["parent_workflow_id"], _short(r["started_at"]),
                           r["status"], _short(r["finished_at"])] for r in report["runs"]]))
    return "\n".join(out) + "\n"


# --- retry ---------------------------------------------------------------------------------
def retry_report(app_id: str, workflow_id: str, reset: list[tuple[TaskState, str | None]]) -> dict[str, Any]:
    return {"app_id": app_id, "workflow_id": workflow_id, "reset": [{
        "invocation_id": state.invocation_id, "task_id": state.task_id, "workflow_id": state.workflow.workflow_id,
        "status": status_name(state.status), "cleared_error": _json_or_text(error)} for state, error in reset]}


def render_retry(report: dict[str, Any]) -> str:
    rows = []
    for r in report["reset"]:
        error = r["cleared_error"]
        cleared = f"{error.get('type', '?')}: {error.get('message', '')}" if isinstance(error, dict) else error
        rows.append([r["invocation_id"], r["task_id"], r["workflow_id"], r["status"], cleared])
    return (f"Workflow {report['workflow_id']} (app {report['app_id']}): reset {len(rows)} failed invocation(s) "
            "to RETRY; everything recorded is kept\n"
            + table(["INVOCATION", "TASK", "WORKFLOW", "STATUS", "CLEARED ERROR"], rows)
            + "\nRun the workflow again with the same id to retry it: recorded steps replay, these run again.\n")
