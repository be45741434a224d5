"""`pynenc-sidecar`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pynenc_sidecar import __version__, inspector, logs
from pynenc_sidecar import settings as config
from pynenc_sidecar.core.errors import FailedPrecondition, NotFound, Unavailable
from pynenc_sidecar.core.retention import Finished
from pynenc_sidecar.engine import WorkflowEngine
from pynenc_sidecar.server import DEFAULT_DATA_FILE, StartupError, Stores, serve
from pynenc_sidecar.storage.interface import PurgeCounts


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults (except for options whose help says what happens when unset), keeps the
    description's paragraphs, and never breaks a line inside a name such as --redis-url."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


SERVE_DESCRIPTION = f"""\
Run the gRPC server. Every option can also be set by the environment variable named in its
help, or in a TOML config file (--config).

Storage: with --redis-url, all state lives in that Redis (share it between replicas and
machines). Without it, state lives in an embedded SQLite file (--data-file, default
./{DEFAULT_DATA_FILE} in the working directory): nothing else to install, and it survives
restarts. Several sidecars on one machine may share that file; sidecars on other machines
cannot (use Redis).

Settings come from flags, then environment variables, then a TOML file (--config), then
defaults. Logs go to stderr, as text on a terminal and as JSON lines otherwise (--log-format).
"""

STORE_EPILOG = """\
Reads the store the server uses: give the same --redis-url or --data-file (or --config, or
the same PYNENC_SIDECAR_* variables). The server may be running or stopped.
"""


def _command(commands, name: str, help_text: str, description: str, settings_names: list[str],
             epilog: str | None = None) -> argparse.ArgumentParser:
    if "\n" not in description:  # one paragraph: wrapped here (the formatter keeps line breaks)
        description = textwrap.fill(description, 92)
    # No abbreviations: `--auth-token X` must not be read as `--auth-token-file X` (and
    # then echoed in an error message).
    sub = commands.add_parser(name, help=help_text, description=description, epilog=epilog,
                              formatter_class=_HelpFormatter, allow_abbrev=False)
    config.add_arguments(sub, settings_names)
    return sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pynenc-sidecar",
        allow_abbrev=False,
        description="A gRPC sidecar that gives workers in any language the Pynenc workflow context "
        "(deterministic random, time, UUIDs, recorded operations, replayed task execution, workflow data) "
        "and Pynenc's StateBackend, on Redis or an embedded SQLite file.",
    )
    parser.add_argument("--version", action="version", version=f"pynenc-sidecar {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _command(commands, "serve", "run the gRPC server", SERVE_DESCRIPTION, config.SERVE)

    inspect_parser = _command(
        commands, "inspect", "show what one workflow recorded",
        "Show one workflow: its identity and status, its runs and child workflows, the operations it "
        "recorded (scope, operation, sequence, value), its tasks with their status and results, and its "
        "data. Text tables cut long values; --json prints everything, in full.",
        config.STORE, STORE_EPILOG)
    inspect_parser.add_argument("workflow_id", metavar="WORKFLOW_ID", help="the workflow's id")
    inspect_parser.add_argument("--app-id", default="pynenc", help="the app the workflow belongs to")
    inspect_parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    workflows_parser = _command(
        commands, "workflows", "list workflow types and runs",
        "List an app's workflow types (with how many runs each) and its runs, oldest first, with the "
        "status of each run's main task.", config.STORE, STORE_EPILOG)
    workflows_parser.add_argument("--app-id", default="pynenc", help="the app to list")
    workflows_parser.add_argument("--type", dest="workflow_type", default="", metavar="TYPE",
                                  help="only runs of this workflow type")
    workflows_parser.add_argument("--limit", type=int, default=None, metavar="N", help="show only the N latest runs")
    workflows_parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    purge_parser = _command(
        commands, "purge", "delete workflows from the store",
        "Delete workflows and everything they stored (recorded operations, data, tasks, StateBackend "
        "invocations) from every index. Exactly one of: --workflow-id ID (one workflow, finished or "
        "not), --older-than DURATION (every workflow that finished that long ago; with --app-id, of that "
        "app only), or --app-id APP alone (the whole app, with --yes). Child workflows are workflows of "
        "their own: purging a parent leaves them. --dry-run, in any of the three, deletes nothing and "
        "shows what would be deleted.", config.STORE, STORE_EPILOG)
    purge_parser.add_argument("--workflow-id", metavar="ID", help="delete this workflow (of --app-id, default pynenc)")
    purge_parser.add_argument("--app-id", metavar="APP", help="the app; alone, delete the whole app")
    purge_parser.add_argument("--older-than", metavar="DURATION",
                              help="delete workflows that finished at least this long ago, e.g. 30d")
    purge_parser.add_argument("--dry-run", action="store_true",
                              help="delete nothing; show what would be deleted (workflow runs, tasks, keys or rows)")
    purge_parser.add_argument("--yes", action="store_true",
                              help="confirm deleting a whole app (--app-id alone); without it, purge says what it "
                                   "would delete")
    purge_parser.add_argument("--json", action="store_true", help="print the result as JSON")

    retry_parser = _command(
        commands, "retry", "make a failed workflow run again from its failed steps",
        "Reset a FAILED workflow for a retry: its failed invocations (the main task, the failed tasks "
        "inside it, failed child workflows) go to RETRY with their errors cleared; everything recorded "
        "is kept (values, finished tasks and their results, data). Then run the workflow again with the "
        "same id (e.g. task.run_workflow(ID, ...)): recorded steps replay, the failed ones run again. "
        "Exit 2 when the workflow is not FAILED or not found.", config.STORE, STORE_EPILOG)
    retry_parser.add_argument("workflow_id", metavar="WORKFLOW_ID", help="the failed workflow's id")
    retry_parser.add_argument("--app-id", default="pynenc", help="the app the workflow belongs to")
    retry_parser.add_argument("--json", action="store_true", help="print the result as JSON")

    health_parser = _command(
        commands, "health", "check a running server through gRPC health (exit 0 when SERVING)",
        "Ask a server's grpc.health.v1 service whether it is SERVING: exit 0 if it is, 1 if not or "
        "unreachable. For container health checks: the address defaults to this machine at the "
        "server's port (PYNENC_SIDECAR_PORT).", config.HEALTH)
    health_parser.add_argument("--address", metavar="HOST:PORT",
                               help="the server to ask (default: 127.0.0.1 at --port, or --host when it is "
                                    "not a wildcard address)")
    health_parser.add_argument("--service", default="", help="a service name, e.g. "
                               "pynenc.sidecar.v1.DeterministicExecutorService (default: the whole server)")
    health_parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    health_parser.add_argument("--tls-ca", default=None, metavar="FILE",
                               help="when the server serves TLS (--tls-cert): the PEM CA that signed its "
                                    "certificate (env PYNENC_SIDECAR_TLS_CA; default: the --tls-cert file itself). "
                                    "With --health-port set, that plaintext port is asked instead")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse would echo every unknown word, which may be a secret given to a wrong flag.
        flags = [word for word in unknown if word.startswith("-")] or ["(a positional argument)"]
        parser.error("unrecognized arguments: " + " ".join(flag.split("=", 1)[0] for flag in flags)
                     + " (values not shown)")
    if args.command is None:
        parser.print_help()
        return 0 if argv == [] else 2
    try:
        settings = config.resolve(args, _SETTINGS[args.command])
    except config.SettingsError as exc:
        print(f"pynenc-sidecar: error: {exc}", file=sys.stderr)
        return 2
    return _HANDLERS[args.command](args, settings)


def _serve(args: argparse.Namespace, settings: config.Settings) -> int:
    logs.configure(settings.log_level, settings.log_format)
    log = logging.getLogger("pynenc_sidecar")
    log.info("settings: %s", settings.describe())
    try:
        return asyncio.run(serve(settings.server_settings()))
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1


def _tool(body: Callable[[Stores], Awaitable[int]], settings: config.Settings, error_status: int = 1) -> int:
    """Run a store tool: errors are one line on stderr and exit status error_status."""
    logs.configure(settings.log_level if "log_level" in settings.sources else "WARNING", settings.log_format)

    async def run() -> int:
        stores = await inspector.open_existing_stores(settings)
        try:
            return await body(stores)
        finally:
            await stores.close()

    try:
        return asyncio.run(run())
    except (inspector.ToolError, Unavailable) as exc:
        print(f"pynenc-sidecar: {exc}", file=sys.stderr)
        return error_status


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _inspect(args: argparse.Namespace, settings: config.Settings) -> int:
    async def body(stores: Stores) -> int:
        snapshot = await inspector.maintenance_engine(stores).workflow_snapshot(args.app_id, args.workflow_id)
        if snapshot is None:
            raise inspector.ToolError(f"workflow {args.workflow_id!r} not found in app {args.app_id!r} "
                                      f"({stores.description})")
        report = inspector.workflow_report(snapshot)
        if args.json:
            _print_json(report)
        else:
            sys.stdout.write(inspector.render_workflow(report))
        return 0

    return _tool(body, settings)


def _workflows(args: argparse.Namespace, settings: config.Settings) -> int:
    if args.limit is not None and args.limit < 0:
        print("pynenc-sidecar: error: --limit must be 0 or more", file=sys.stderr)
        return 2

    async def body(stores: Stores) -> int:
        listing = await inspector.maintenance_engine(stores).workflow_runs(args.app_id, args.workflow_type, args.limit)
        report = inspector.workflows_report(listing)
        if args.json:
            _print_json(report)
        else:
            sys.stdout.write(inspector.render_workflows(report))
        return 0

    return _tool(body, settings)


def _purge_mistake(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of purge's options, if anything (one line)."""
    modes = [name for name, given in (("--workflow-id", args.workflow_id), ("--older-than", args.older_than)) if given]
    if len(modes) > 1 or not (modes or args.app_id):
        return "purge needs exactly one of --workflow-id, --older-than, or --app-id alone"
    if args.yes and modes:
        return f"--yes confirms purging a whole app (--app-id alone); {modes[0]} needs no confirmation: drop --yes"
    return None


def _purge(args: argparse.Namespace, settings: config.Settings) -> int:
    mistake = _purge_mistake(args)
    if mistake:
        print(f"pynenc-sidecar: error: {mistake}", file=sys.stderr)
        return 2
    older_than = None
    if args.older_than:
        try:
            older_than = config.parse_duration(args.older_than)
        except ValueError as problem:
            print(f"pynenc-sidecar: error: --older-than: {args.older_than!r} {problem}", file=sys.stderr)
            return 2

    async def body(stores: Stores) -> int:
        engine = inspector.maintenance_engine(stores)
        if args.workflow_id:
            app_id = args.app_id or "pynenc"
            if args.dry_run:
                preview = await engine.purge_workflow_preview(app_id, args.workflow_id)
                return _print_preview(args, engine.purge_unit,
                                      [_PurgeTarget(app_id, args.workflow_id, None, preview)],
                                      {"app_id": app_id, "workflow_id": args.workflow_id})
            deleted = await engine.purge_workflow(app_id, args.workflow_id)
            result = {"app_id": app_id, "workflow_id": args.workflow_id, "dry_run": False, "deleted": deleted}
            message = (f"purged workflow {args.workflow_id!r} of app {app_id!r}" if deleted else
                       f"nothing to purge: workflow {args.workflow_id!r} not found in app {app_id!r}")
        elif older_than is not None:
            cutoff = engine.cutoff_us(older_than)
            apps = [args.app_id] if args.app_id else None
            head = {"finished_before": inspector.iso(cutoff)}
            if args.dry_run:
                targets = [_PurgeTarget(f.app_id, f.workflow.workflow_id, f, counts)
                           for f, counts in await engine.finished_previews(cutoff, apps)]
                return _print_preview(args, engine.purge_unit, targets, head,
                                      f"workflows that finished before {inspector.iso(cutoff, precise=False)}")
            await engine.repair_runs()
            found = [f async for f in engine.purge_finished(cutoff, apps)]
            result = {"dry_run": False, **head, "workflows": [_finished_json(f) for f in found]}
            message = (f"deleted {len(found)} workflow(s) that finished before "
                       f"{inspector.iso(cutoff, precise=False)}")
        else:
            preview = await engine.purge_app_preview(args.app_id)
            if args.dry_run:
                return _print_preview(args, engine.purge_unit, [_PurgeTarget(args.app_id, None, None, preview)],
                                      {"app_id": args.app_id})
            if not args.yes:
                print(f"pynenc-sidecar: error: purging app {args.app_id!r} deletes all its state: "
                      f"{_counted(preview)}. Add --yes to delete it (--dry-run lists it)", file=sys.stderr)
                return 2
            deleted = await engine.purge_app(args.app_id)
            result = {"app_id": args.app_id, "dry_run": False, "deleted": deleted}
            message = f"purged app {args.app_id!r}" if deleted else f"nothing to purge: app {args.app_id!r} is empty"
        if args.json:
            _print_json(result)
        else:
            print(message)
        return 0

    return _tool(body, settings)


@dataclass(frozen=True)
class _PurgeTarget:
    """One thing a dry run would delete: a workflow (finished, when found by age), or an app."""

    app_id: str
    workflow_id: str | None
    finished: Finished | None
    counts: PurgeCounts


def _counted(counts: PurgeCounts) -> str:
    return f"{counts.workflows} workflow run(s), {counts.tasks} task(s), {counts.entries} {counts.unit}"


def _finished_json(f: Finished) -> dict:
    return {"app_id": f.app_id, **inspector.identity_json(f.workflow), "finished_at": inspector.iso(f.finished_us)}


def _print_preview(args: argparse.Namespace, unit: str, targets: list[_PurgeTarget], head: dict, what: str = "") -> int:
    """A dry run's report: what the purge would delete, per target and in total."""
    total = PurgeCounts(sum(t.counts.workflows for t in targets), sum(t.counts.tasks for t in targets),
                        sum(t.counts.entries for t in targets), unit)

    def counts_json(counts: PurgeCounts) -> dict:
        return {"workflows": counts.workflows, "tasks": counts.tasks, counts.unit: counts.entries}

    if args.json:
        result = {"dry_run": True, **head}
        if args.older_than:
            # Found by age, so every target is a finished workflow.
            result["workflows"] = [_finished_json(t.finished) | {"would_delete": counts_json(t.counts)}
                                   for t in targets if t.finished is not None]
        result["would_delete"] = counts_json(total)
        _print_json(result)
        return 0
    rows = [[t.app_id, t.workflow_id or "(the whole app)",
             t.finished.workflow.workflow_type if t.finished else None,
             inspector.iso(t.finished.finished_us, precise=False) if t.finished else None,
             t.counts.workflows, t.counts.tasks, t.counts.entries] for t in targets]
    if len(targets) != 1:
        rows.append(["total", None, None, None, total.workflows, total.tasks, total.entries])
    print(f"dry run, nothing deleted{f' ({what})' if what else ''}: the purge would delete {_counted(total)}")
    print(inspector.table(["APP", "WORKFLOW", "TYPE", "FINISHED AT", "WORKFLOWS", "TASKS", unit.upper()], rows))
    return 0


def _retry(args: argparse.Namespace, settings: config.Settings) -> int:
    async def body(stores: Stores) -> int:
        try:
            reset = await WorkflowEngine(stores.store).retry_workflow(args.app_id, args.workflow_id)
        except (NotFound, FailedPrecondition) as exc:
            raise inspector.ToolError(f"{exc.message} ({stores.description})") from None
        report = inspector.retry_report(args.app_id, args.workflow_id, reset)
        if args.json:
            _print_json(report)
        else:
            sys.stdout.write(inspector.render_retry(report))
        return 0

    return _tool(body, settings, error_status=2)


def _health_channel(args: argparse.Namespace, settings: config.Settings) -> tuple[str, grpc.Channel]:
    """Health needs no token. Through --health-port when set (plaintext); else the main port,
    with TLS when the server has a certificate (mutual TLS needs --health-port)."""
    if settings.health_port and not args.address:
        address = f"{_local_host(settings.host)}:{settings.health_port}"
        return address, grpc.insecure_channel(address)
    address = args.address or f"{_local_host(settings.host)}:{settings.port}"
    if not settings.tls_cert:
        return address, grpc.insecure_channel(address)
    if settings.tls_client_ca:
        raise ValueError("the server requires client certificates (--tls-client-ca): set --health-port "
                         "(a plaintext health-only port) for health checks")
    ca_path = args.tls_ca or os.environ.get("PYNENC_SIDECAR_TLS_CA") or settings.tls_cert
    try:
        with open(ca_path, "rb") as handle:
            root = handle.read()
    except OSError as exc:
        raise ValueError(f"cannot read the CA file {ca_path}: {exc.strerror or exc}") from None
    return address, grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root))


def _health(args: argparse.Namespace, settings: config.Settings) -> int:
    try:
        address, channel = _health_channel(args, settings)
    except ValueError as problem:
        print(f"pynenc-sidecar: error: {problem}", file=sys.stderr)
        return 2
    try:
        with channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    except grpc.RpcError as error:
        print(f"{address}: not serving ({error.code().name}: {error.details()})", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    print(
        f"{address}{' ' + args.service if args.service else ''}: {status}", file=sys.stdout if serving else sys.stderr
    )
    return 0 if serving else 1


def _local_host(host: str) -> str:
    """Where to reach a server listening on host from this machine."""
    if host in ("", "0.0.0.0", "::", "[::]", "*"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


_SETTINGS = {"serve": config.SERVE, "inspect": config.STORE, "workflows": config.STORE, "purge": config.STORE,
             "retry": config.STORE, "health": config.HEALTH}
_HANDLERS = {"serve": _serve, "inspect": _inspect, "workflows": _workflows, "purge": _purge, "retry": _retry,
             "health": _health}
