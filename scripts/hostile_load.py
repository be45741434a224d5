#!/usr/bin/env python3
"""Hostile load, bounded and on loopback only: the figures of issue 12, cases 2 to 9 (not 1:
see scripts/measure_history_read.py).

    .venv/bin/python scripts/hostile_load.py                      # this tree
    .venv/bin/python scripts/hostile_load.py --source /tmp/old    # another checkout (before/after)
    .venv/bin/python scripts/hostile_load.py --only 3,4 --json out.json

Every server it starts runs the code of --source (default: this repository) with this
repository's virtualenv; each case starts its own redis-server and sidecars on free loopback
ports and stops them by PID. Settings that a tree does not know are not passed, so an older
checkout runs with its defaults.

  2  one AddHistory of 1,000 ids sharing a 100 KiB execution context: bytes it adds to Redis
     (used_memory) and to the SQLite file (pages in use), against the request's size
  3  SQLite, concurrent AddHistory over gRPC: calls, and how many failed INTERNAL
  4  garbage request bytes: the status codes returned, and traceback lines in the server log
  5  1,100 TCP connections that never send a byte, server soft open-file limit 1024: of 20 new
     clients how many were served (2 s deadline each), and how many of the silent ones were
     still open then and 30 s later
  6  20,000 history entries on one timestamp (20 AddHistory of 1,000 ids): seconds to stream
     them at batch 100 (StreamHistoryInTimeRange, StreamInvocationsInTimeRange), both stores
  7  a second replica under `faketime` 2 s fast, a 3 s lease asked for 1.5 s after it was
     granted: takeovers of a live lease in 10 tries, on Redis and on SQLite
  8  a token bound to app A (an unbound token on a tree without app binding): calls on app B
     refused, apps DiscoverAppInfos shows it, and whether a stored "password" comes back
  9  error spans in the traces of the first calls after Redis started (real OTLP receiver)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "sdk" / "python"))
sys.path.insert(0, str(ROOT / "stubs" / "python"))

import grpc  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402

from executor_client import position  # noqa: E402
from pynenc_sidecar_proto.v1 import common_pb2  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de  # noqa: E402
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc  # noqa: E402
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb  # noqa: E402
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc  # noqa: E402
from support import RedisServer, SidecarServer  # noqa: E402

RUNNING = common_pb2.InvocationStatus.Value("INVOCATION_STATUS_RUNNING")


class Tree:
    """The code under test: a checkout's service/, stubs/python and sdk/python (older checkouts
    keep the stubs in sdk/python), run with this virtualenv."""

    def __init__(self, source: Path) -> None:
        self.source = source.resolve()
        self.env = {"PYTHONPATH": ":".join(str(self.source / d) for d in ("service", "stubs/python", "sdk/python"))}
        help_text = subprocess.run([sys.executable, "-m", "pynenc_sidecar", "serve", "--help"], env={
            **os.environ, **self.env}, capture_output=True, text=True, timeout=60).stdout
        self.flags = {word for word in help_text.split() if word.startswith("--")}

    def server(self, redis_url: str | None, data_file: str | None = None, args: list[str] | None = None,
               env: dict[str, str] | None = None, launcher: list[str] | None = None) -> SidecarServer:
        args = list(args or [])
        known: list[str] = []
        while args:  # drop flags (and their value) this tree does not have
            flag, value = args.pop(0), args.pop(0)
            if flag in self.flags:
                known += [flag, value]
        return SidecarServer(redis_url, data_file=data_file, extra_args=known, env={**self.env, **(env or {})},
                             launcher=launcher or [])


def seconds(value: float) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(value), nanos=int(round((value % 1) * 1e9)))


# --- 3: SQLite concurrent AddHistory ---------------------------------------------------------------
# --- 2: storage per AddHistory --------------------------------------------------------------------
def _stored_bytes(redis_url: str | None, data_file: str) -> int:
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            return int(client.info("memory")["used_memory"])
        finally:
            client.close()
    import sqlite3

    conn = sqlite3.connect(data_file)
    try:
        (pages,), (free,), (size,) = (conn.execute(f"PRAGMA {p}").fetchone()
                                      for p in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size
    finally:
        conn.close()


def case_2(tree: Tree, ids: int = 1000, context_kib: int = 100) -> dict:
    results = {}
    redis_server = RedisServer().start()
    directory = tempfile.mkdtemp(prefix="hostile-2-")
    try:
        for store in ("redis", "sqlite"):
            redis_url = redis_server.url if store == "redis" else None
            data_file = f"{directory}/state.db"
            server = tree.server(redis_url, data_file).start()
            try:
                with server.channel() as channel:
                    stub = sb_grpc.StateBackendServiceStub(channel)
                    # Tables (SQLite) and scripts (Redis) exist before the measured call.
                    stub.AddHistory(sb.AddHistoryRequest(app_id="warm", invocation_ids=["w"],
                                                         history=sb.InvocationHistory(status=RUNNING)), timeout=30)
                    request = sb.AddHistoryRequest(
                        app_id="hostile", invocation_ids=[str(uuid.uuid4()) for _ in range(ids)],
                        history=sb.InvocationHistory(status=RUNNING, execution_context_json=json.dumps(
                            {"pad": "x" * (context_kib * 1024)})))
                    before = _stored_bytes(redis_url, data_file)
                    stub.AddHistory(request, timeout=120)
                    added = _stored_bytes(redis_url, data_file) - before
            finally:
                server.stop()
            results[store] = {"request_bytes": request.ByteSize(), "added_bytes": added,
                              "ratio": round(added / request.ByteSize(), 1)}
    finally:
        redis_server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
    return results


# --- 6: time-range paging over ties ---------------------------------------------------------------
def case_6(tree: Tree, calls: int = 20, ids_per_call: int = 1000, batch: int = 100) -> dict:
    results = {}
    redis_server = RedisServer().start()
    directory = tempfile.mkdtemp(prefix="hostile-6-")
    try:
        for store in ("redis", "sqlite"):
            redis_url = redis_server.url if store == "redis" else None
            server = tree.server(redis_url, f"{directory}/state.db").start()
            try:
                with server.channel() as channel:
                    stub = sb_grpc.StateBackendServiceStub(channel)
                    entry = sb.InvocationHistory(status=RUNNING)
                    entry.timestamp.FromMicroseconds(1_700_000_000_000_000)
                    for call in range(calls):
                        stub.AddHistory(sb.AddHistoryRequest(
                            app_id="ties", invocation_ids=[f"inv-{call}-{n}" for n in range(ids_per_call)],
                            history=entry), timeout=60)
                    window = {"app_id": "ties", "batch_size": batch}
                    start, end = entry.timestamp, entry.timestamp
                    figures = {"entries": calls * ids_per_call, "batch": batch}
                    for name, method, field_name in (
                            ("history", stub.StreamHistoryInTimeRange, "history"),
                            ("invocations", stub.StreamInvocationsInTimeRange, "invocation_ids")):
                        request_type = (sb.StreamHistoryInTimeRangeRequest if name == "history"
                                        else sb.StreamInvocationsInTimeRangeRequest)
                        started = time.monotonic()
                        got = sum(len(getattr(reply, field_name)) for reply in method(
                            request_type(start_time=start, end_time=end, **window), timeout=600))
                        figures[f"{name}_seconds"] = round(time.monotonic() - started, 2)
                        figures[f"{name}_streamed"] = got
            finally:
                server.stop()
            results[store] = figures
    finally:
        redis_server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
    return results


def case_3(tree: Tree, calls: int = 20_000, in_flight: int = 64) -> dict:
    directory = tempfile.mkdtemp(prefix="hostile-3-")
    server = tree.server(None, data_file=f"{directory}/state.db").start()
    codes: Counter[str] = Counter()
    try:
        async def run() -> None:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = sb_grpc.StateBackendServiceStub(channel)
                gate = asyncio.Semaphore(in_flight)

                async def one(n: int) -> None:
                    async with gate:
                        try:
                            await stub.AddHistory(sb.AddHistoryRequest(
                                app_id="hostile", invocation_ids=[f"inv-{n % 500}", f"inv-{n % 500}-b"],
                                history=sb.InvocationHistory(status=RUNNING)), timeout=30)
                            codes["OK"] += 1
                        except grpc.aio.AioRpcError as error:
                            codes[error.code().name] += 1

                await asyncio.gather(*(one(n) for n in range(calls)))

        started = time.monotonic()
        asyncio.run(run())
        elapsed = time.monotonic() - started
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return {"calls": calls, "in_flight": in_flight, "internal": codes.get("INTERNAL", 0), "codes": dict(codes),
            "seconds": round(elapsed, 1)}


# --- 4: garbage bytes ------------------------------------------------------------------------------
GARBAGE = [b"\xff\xff\xff\xff", b"\x0a\x05\xff\xfe\xfd\xfc\xfb", b"\x08", b"\x12\x7fxyz"]
METHODS = ["/pynenc.sidecar.v1.DeterministicExecutorService/Random",
           "/pynenc.sidecar.v1.DeterministicExecutorService/ExecuteTask",
           "/pynenc.sidecar.v1.StateBackendService/AddHistory",
           "/pynenc.sidecar.v1.StateBackendService/SetResult"]


def case_4(tree: Tree, rounds: int = 50) -> dict:
    redis_server = RedisServer().start()
    server = tree.server(redis_server.url).start()
    codes: Counter[str] = Counter()
    try:
        with server.channel() as channel:
            for _ in range(rounds):
                for method in METHODS:
                    for payload in GARBAGE:
                        try:
                            channel.unary_unary(method)(payload, timeout=10)
                            codes["OK"] += 1
                        except grpc.RpcError as error:
                            codes[error.code().name] += 1
    finally:
        server.stop()
        redis_server.cleanup()
    log = server.log()
    return {"requests": sum(codes.values()), "codes": dict(codes), "traceback_lines": log.count("Traceback"),
            "error_lines": sum('"level": "ERROR"' in line or " ERROR " in line for line in log.splitlines())}


# --- 5: silent connections -------------------------------------------------------------------------
def _open_count(sockets: list[socket.socket]) -> int:
    import select

    poller = select.poll()
    by_fd = {s.fileno(): s for s in sockets if s.fileno() >= 0}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    closed = len(sockets) - len(by_fd)
    for fd, _ in poller.poll(0):
        try:
            while by_fd[fd].recv(65536, socket.MSG_DONTWAIT):
                pass
            by_fd[fd].close()
            closed += 1
        except BlockingIOError:
            pass
        except ConnectionError:
            by_fd[fd].close()
            closed += 1
    return len(sockets) - closed


def case_5(tree: Tree, silent_count: int = 1100, clients: int = 20) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < silent_count + 512:
        resource.setrlimit(resource.RLIMIT_NOFILE, (silent_count + 512, hard))
    limit = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    directory = tempfile.mkdtemp(prefix="hostile-5-")
    server = tree.server(None, data_file=f"{directory}/state.db",
                         launcher=["prlimit", f"--nofile=1024:{limit}", "--"]).start()
    silent: list[socket.socket] = []
    try:
        silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(silent_count)]
        for sock in silent:
            sock.settimeout(None)
        served = 0
        for n in range(clients):
            try:
                with grpc.insecure_channel(server.address) as channel:
                    de_grpc.DeterministicExecutorServiceStub(channel).Random(
                        de.RandomRequest(position=position("hostile", f"w{n}", 1)), timeout=2)
                served += 1
            except grpc.RpcError:
                pass
        open_after_clients = _open_count(silent)
        time.sleep(30)
        still_open = _open_count(silent)
    finally:
        for sock in silent:
            sock.close()
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return {"silent": silent_count, "clients": clients, "served": served, "open_after_clients": open_after_clients,
            "open_30s_later": still_open}


# --- 7: a skewed replica ---------------------------------------------------------------------------
def case_7(tree: Tree, tries: int = 10) -> dict:
    if shutil.which("faketime") is None:
        return {"skipped": "faketime is not installed"}
    results = {}
    redis_server = RedisServer().start()
    directory = tempfile.mkdtemp(prefix="hostile-7-")
    try:
        for store in ("redis", "sqlite"):
            redis_url = redis_server.url if store == "redis" else None
            data_file = None if redis_url else f"{directory}/shared.db"
            honest = tree.server(redis_url, data_file).start()
            fast = tree.server(redis_url, data_file, launcher=["faketime", "-f", "+2s"]).start()
            takeovers = fenced_completions_accepted = 0
            try:
                with honest.channel() as a, fast.channel() as b:
                    via_honest, via_fast = (
                        de_grpc.DeterministicExecutorServiceStub(a),
                        de_grpc.DeterministicExecutorServiceStub(b),
                    )
                    for n in range(tries):
                        app_id = f"skew-{uuid.uuid4().hex[:8]}"
                        started = via_honest.ExecuteTask(de.ExecuteTaskRequest(
                            position=position(app_id, "wf", 1), task_id="t", arguments_json="{}",
                            runner_id="w1", lease_ttl=seconds(3)), timeout=10)
                        time.sleep(1.5)
                        poll = via_fast.WaitTask(de.WaitTaskRequest(
                            app_id=app_id, invocation_id=started.invocation.invocation_id, runner_id="w2",
                            timeout=seconds(0), lease_ttl=seconds(1)), timeout=10)
                        takeovers += poll.HasField("lease")
                        if n == 0:  # fencing, once: let the takeover happen, lapse, then w1 completes
                            taken = poll if poll.HasField("lease") else via_fast.WaitTask(de.WaitTaskRequest(
                                app_id=app_id, invocation_id=started.invocation.invocation_id, runner_id="w2",
                                timeout=seconds(10), lease_ttl=seconds(1)), timeout=20)
                            time.sleep(2.2)
                            try:  # through the fast replica: by its clock w2's lease has lapsed
                                via_fast.CompleteTask(de.CompleteTaskRequest(
                                    app_id=app_id, invocation_id=started.invocation.invocation_id,
                                    lease_id=started.lease.lease_id, result_json='"stale"'), timeout=10)
                                fenced_completions_accepted += 1
                            except grpc.RpcError:
                                pass
                            assert taken.HasField("lease")
            finally:
                fast.stop()
                honest.stop()
            results[store] = {"tries": tries, "live_lease_takeovers": takeovers,
                              "taken_over_holder_completed": bool(fenced_completions_accepted)}
    finally:
        redis_server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
    return results


# --- 8: apps and tokens ----------------------------------------------------------------------------
def case_8(tree: Tree, calls: int = 20) -> dict:
    bound = "--auth-token-file" in tree.flags and _supports_app_binding(tree)
    shop_token, admin_token = "shop-token-0123456789abcdef", "admin-token-0123456789abcdef"
    directory = Path(tempfile.mkdtemp(prefix="hostile-8-"))
    (directory / "tokens").write_text(
        f"{shop_token} shop\n{admin_token}\n" if bound else f"{shop_token}\n{admin_token}\n"
    )
    redis_server = RedisServer().start()
    server = tree.server(redis_server.url, args=["--auth-token-file", str(directory / "tokens")]).start()
    codes: Counter[str] = Counter()
    try:
        with server.channel() as channel:
            stub = sb_grpc.StateBackendServiceStub(channel)
            admin = [("authorization", f"Bearer {admin_token}")]
            shop = [("authorization", f"Bearer {shop_token}")]
            stub.StoreAppInfo(sb.StoreAppInfoRequest(app_info=sb.AppInfo(
                app_id="billing", module="m", config_values_json='{"password": "hunter2"}')), metadata=admin,
                timeout=10)
            stub.StoreAppInfo(sb.StoreAppInfoRequest(app_info=sb.AppInfo(app_id="shop", module="m")), metadata=shop,
                              timeout=10)
            for n in range(calls):
                try:
                    stub.SetResult(sb.SetResultRequest(app_id="billing", invocation_id=f"i{n}", result_json="1"),
                                   metadata=shop, timeout=10)
                    codes["OK"] += 1
                except grpc.RpcError as error:
                    codes[error.code().name] += 1
            listed = stub.DiscoverAppInfos(sb.DiscoverAppInfosRequest(), metadata=shop, timeout=10).app_infos
    finally:
        server.stop()
        redis_server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
    return {"token_bound_to_shop": bound, "calls_on_billing": calls, "codes": dict(codes),
            "apps_listed_to_shop_token": sorted(listed),
            "password_readable": any("hunter2" in info.config_values_json for info in listed.values())}


def _supports_app_binding(tree: Tree) -> bool:
    probe = subprocess.run([sys.executable, "-c",
                            "from pynenc_sidecar import security; print(hasattr(security, 'TokenGrant'))"],
                           env={**os.environ, **tree.env}, capture_output=True, text=True, timeout=60)
    return probe.stdout.strip() == "True"


# --- 9: error spans after Redis starts ------------------------------------------------------------
def case_9(tree: Tree) -> dict:
    from test_tracing import STATUS_ERROR, Caller, OtlpReceiver, otel_env

    receiver = OtlpReceiver().start()
    redis_server = RedisServer().start()
    server = tree.server(redis_server.url, env=otel_env(receiver)).start()
    callers = [Caller() for _ in range(3)]
    try:
        with server.channel() as channel:
            stub = de_grpc.DeterministicExecutorServiceStub(channel)
            stub.Random(
                de.RandomRequest(position=position("hostile", "w", 1)), metadata=callers[0].metadata, timeout=10
            )
            stub.UtcNow(
                de.UtcNowRequest(position=position("hostile", "w", 1)), metadata=callers[1].metadata, timeout=10
            )
            stub.ExecuteTask(de.ExecuteTaskRequest(position=position("hostile", "w", 1), task_id="t",
                                                   arguments_json="{}"), metadata=callers[2].metadata, timeout=10)
        spans = [s for c in callers for s in receiver.trace(c.trace_id, at_least=2)]
    finally:
        server.stop()
        redis_server.cleanup()
        receiver.stop()
    errors = [s["name"] for s in spans if s["status"] == STATUS_ERROR]
    return {"traces": len(callers), "spans": len(spans), "error_spans": len(errors), "error_span_names": errors}


CASES = {"2": case_2, "3": case_3, "4": case_4, "5": case_5, "6": case_6, "7": case_7, "8": case_8, "9": case_9}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose service/ runs (default: this one)")
    parser.add_argument("--only", default=",".join(CASES), help="comma-separated cases (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args()
    tree = Tree(options.source)
    figures = {}
    for name in options.only.split(","):
        started = time.monotonic()
        figures[name] = CASES[name.strip()](tree)
        print(f"case {name} ({time.monotonic() - started:.0f} s): {json.dumps(figures[name])}", flush=True)
    if options.json:
        options.json.write_text(json.dumps({"source": str(tree.source), "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
