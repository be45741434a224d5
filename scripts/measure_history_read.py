#!/usr/bin/env python3
"""Issue 12, case 1: what one huge GetHistory does to everyone else, bounded and loopback-only.

    .venv/bin/python scripts/measure_history_read.py                  # 10^5 entries, both stores
    .venv/bin/python scripts/measure_history_read.py --entries 20000 --store sqlite --readers 1
    PYNENC_SIDECAR_SERVER_PATH=/tmp/old/service:/tmp/old/stubs/python:/tmp/old/sdk/python \
        .venv/bin/python scripts/measure_history_read.py --label before   # an older server's code
    .venv/bin/python scripts/measure_history_read.py --label "no turns" --server-arg=--max-concurrent-bulk-reads=64

It starts its own redis-server and sidecar on free loopback ports, seeds one invocation with
--entries history entries of about 650 bytes (written straight into the store, in the layout
both the paged and the unpaged servers read), reads its first two pages once (a server with a
bulk read process starts it then, as a long-running server has), then for 1 and for --readers
readers at once:

1. idle: a prober calls GetInvocation back to back for --probe-seconds; its p50/p99;
2. huge read: the readers (separate processes, so that decoding a big reply cannot slow the
   prober) each read the whole history the way a client of that server must: one GetHistory
   (the unpaged server sends it all in one reply), or page by page with next_page_token; the
   prober runs meanwhile. The server's RSS (/proc/PID/status) is sampled every 50 ms.

It prints one table row per store and reader count: prober p50/p99 idle and during the read,
the read's duration, errors, the server's RSS before, at its peak and 2 s after (and its bulk
read process's, when it has one). Every process
it starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

from pynenc_sidecar.core.positions import escape  # noqa: E402
from pynenc_sidecar_proto.v1 import state_backend_pb2 as sb  # noqa: E402
from pynenc_sidecar_proto.v1 import state_backend_pb2_grpc as sb_grpc  # noqa: E402
from support import RedisServer, SidecarServer, children  # noqa: E402

WIDE = [("grpc.max_receive_message_length", 1024 * 1024 * 1024)]


def entry_payload(n: int) -> str:
    entry = sb.InvocationHistory(status=7, runner_id=f"runner-{n % 8}",
                                 execution_context_json=json.dumps({"pad": "x" * 480, "n": n}))
    entry.timestamp.FromMicroseconds(1_700_000_000_000_000 + n)
    return json_format.MessageToJson(entry, indent=None)


def seed_redis(url: str, app: str, invocation: str, entries: int) -> None:
    import redis

    client = redis.Redis.from_url(url)
    # The history under both layouts: the invocation's own tag (servers before the Redis Cluster
    # change) and the app's tag (since: one slot per StateBackend write); each server reads its own.
    keys = [f"psc:{{{escape(app)}:{escape(invocation)}}}:hist", f"psc:{{{escape(app)}}}:hist:{escape(invocation)}"]
    pipe = client.pipeline(transaction=False)
    for n in range(entries):
        member = f"{n:016x}|{escape(invocation)}|{entry_payload(n)}"
        for key in keys:
            pipe.zadd(key, {member: 1_700_000_000_000_000 + n})
        if n % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.close()


def seed_sqlite(channel: grpc.Channel, path: str, app: str, invocation: str, entries: int) -> None:
    import sqlite3

    # One entry through the server creates the tables; the rest go in one transaction.
    sb_grpc.StateBackendServiceStub(channel).AddHistory(sb.AddHistoryRequest(
        app_id=app, invocation_ids=["warm"], history=sb.InvocationHistory()), timeout=30)
    conn = sqlite3.connect(path, timeout=30)
    with conn:
        conn.executemany("INSERT INTO sb_history (app, invocation, ts_us, payload) VALUES (?,?,?,?)",
                         ((app, invocation, 1_700_000_000_000_000 + n, entry_payload(n)) for n in range(entries)))
    conn.close()


def read_all(address: str, app: str, invocation: str, out: multiprocessing.Queue, go) -> None:
    count, pages, error = 0, 0, ""
    with grpc.insecure_channel(address, options=WIDE) as channel:
        stub = sb_grpc.StateBackendServiceStub(channel)
        stub.GetInvocation(sb.GetInvocationRequest(app_id=app, invocation_id="probe"), timeout=30)  # connected
        out.put("ready")
        go.wait(120)
        start = time.perf_counter()
        try:
            request = sb.GetHistoryRequest(app_id=app, invocation_id=invocation)
            while True:
                reply = stub.GetHistory(request, timeout=120)
                count, pages = count + len(reply.history), pages + 1
                token = getattr(reply, "next_page_token", "")
                if not token:
                    break
                request.page_token = token
        except grpc.RpcError as exc:
            error = f"{exc.code().name}: {exc.details()}"
    out.put({"seconds": time.perf_counter() - start, "entries": count, "pages": pages, "error": error})


def warm_up(address: str, app: str, invocation: str) -> None:
    """Two pages, as a long-running server has seen before: a server with a bulk read process
    starts it at its first read of a second page, and it needs a moment to start."""
    with grpc.insecure_channel(address, options=WIDE) as channel:
        stub = sb_grpc.StateBackendServiceStub(channel)
        first = stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id=invocation), timeout=120)
        if first.next_page_token:
            stub.GetHistory(sb.GetHistoryRequest(app_id=app, invocation_id=invocation,
                                                 page_token=first.next_page_token), timeout=120)
    time.sleep(3)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def probe(stub, app: str, stop: threading.Event, latencies: list[float], errors: list[str]) -> None:
    request = sb.GetInvocationRequest(app_id=app, invocation_id="probe")
    while not stop.is_set():
        start = time.perf_counter()
        try:
            stub.GetInvocation(request, timeout=60)
        except grpc.RpcError as exc:
            errors.append(exc.code().name)
        latencies.append((time.perf_counter() - start) * 1000)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(server: SidecarServer, app: str, invocation: str, readers: int, probe_seconds: float) -> dict:
    pid = server.process.pid
    with grpc.insecure_channel(server.address) as channel:
        stub = sb_grpc.StateBackendServiceStub(channel)
        idle: list[float] = []
        errors: list[str] = []
        stop = threading.Event()
        thread = threading.Thread(target=probe, args=(stub, app, stop, idle, errors))
        thread.start()
        time.sleep(probe_seconds)
        stop.set()
        thread.join()

        # The readers start (and connect) before the measured part: spawning is not the read.
        context = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue = context.Queue()
        go = context.Event()
        procs = [context.Process(target=read_all, args=(server.address, app, invocation, queue, go))
                 for _ in range(readers)]
        for proc in procs:
            proc.start()
        for _ in procs:
            assert queue.get(timeout=120) == "ready"
        time.sleep(1)
        busy: list[float] = []
        rss_before = rss_mb(pid)
        peak = [rss_before]
        helpers = children(pid)
        helper_before = sum(rss_mb(c) for c in helpers)
        helper_peak = [helper_before]
        stop = threading.Event()
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], rss_mb(pid))
                helper_peak[0] = max(helper_peak[0], sum(rss_mb(c) for c in helpers))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        prober = threading.Thread(target=probe, args=(stub, app, stop, busy, errors))
        prober.start()
        go.set()
        results = [queue.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join(30)
        stop.set()
        prober.join()
        time.sleep(2)
        sampling.set()
        sampler.join()
        rss_after = rss_mb(pid)
        helper_after = sum(rss_mb(c) for c in helpers)
    return {
        "readers": readers, "idle_p50_ms": percentile(idle, 0.5), "idle_p99_ms": percentile(idle, 0.99),
        "busy_p50_ms": percentile(busy, 0.5), "busy_p99_ms": percentile(busy, 0.99), "busy_max_ms": max(busy or [0]),
        "probes": len(busy), "probe_errors": len(errors),
        "read_s": max(r["seconds"] for r in results), "entries_read": [r["entries"] for r in results],
        "pages": results[0]["pages"], "read_errors": [r["error"] for r in results if r["error"]],
        "rss_before_mb": rss_before, "rss_peak_mb": peak[0], "rss_after_mb": rss_after,
        "helper_processes": len(helpers), "helper_rss_before_mb": helper_before, "helper_rss_peak_mb": helper_peak[0],
        "helper_rss_after_mb": helper_after,
    }


def run_store(store: str, args: argparse.Namespace) -> list[dict]:
    app, invocation = f"huge-{uuid.uuid4().hex[:8]}", "big-invocation"
    env = {}
    if os.environ.get("PYNENC_SIDECAR_SERVER_PATH"):
        env["PYTHONPATH"] = os.environ["PYNENC_SIDECAR_SERVER_PATH"]
    redis_server = None
    directory = tempfile.mkdtemp(prefix="psc-huge-")
    try:
        if store == "redis":
            redis_server = RedisServer().start()
            server = SidecarServer(redis_server.url, env=env, extra_args=args.server_arg).start()
            seed_redis(redis_server.url, app, invocation, args.entries)
        else:
            server = SidecarServer(None, data_file=f"{directory}/sidecar.db", env=env,
                                   extra_args=args.server_arg).start()
            with grpc.insecure_channel(server.address) as channel:
                seed_sqlite(channel, server.data_file, app, invocation, args.entries)
        try:
            with grpc.insecure_channel(server.address) as channel:
                sb_grpc.StateBackendServiceStub(channel).UpsertInvocations(sb.UpsertInvocationsRequest(
                    app_id=app, invocations=[sb.Invocation(invocation_id="probe", task_id="t")]), timeout=30)
            warm_up(server.address, app, invocation)
            rows = []
            for readers in sorted({1, args.readers}):
                row = measure(server, app, invocation, readers, args.probe_seconds)
                row.update(store=store, label=args.label, entries=args.entries)
                rows.append(row)
            return rows
        finally:
            server.stop()
    finally:
        if redis_server is not None:
            redis_server.stop()
            redis_server.cleanup()


def helper_rss(row: dict) -> str:
    if not row["helper_processes"]:
        return "none"
    return f"{row['helper_rss_before_mb']:.0f}/{row['helper_rss_peak_mb']:.0f}/{row['helper_rss_after_mb']:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--store", choices=["redis", "sqlite", "both"], default="both")
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--probe-seconds", type=float, default=3.0)
    parser.add_argument("--label", default="this branch")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="an argument for `serve` (repeat for more): --server-arg=--max-concurrent-bulk-reads=4")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    rows = []
    for store in (["redis", "sqlite"] if args.store == "both" else [args.store]):
        rows += run_store(store, args)
    print(f"{'label':<12} {'store':<7} {'readers':>7} {'idle p99':>9} {'busy p50':>9} {'busy p99':>9} "
          f"{'busy max':>9} {'read s':>7} {'pages':>6} {'RSS MB before/peak/after':>26} "
          f"{'bulk process RSS MB':>20} errors")
    for r in rows:
        errors = r["read_errors"] + ([f"{r['probe_errors']} probe errors"] if r["probe_errors"] else [])
        # A reader that got fewer entries than were seeded read something else (a key layout the
        # server does not use): its row measures nothing, so it says so.
        errors += [f"read {n} of {args.entries} entries" for n in r["entries_read"] if n != args.entries]
        print(f"{r['label']:<12} {r['store']:<7} {r['readers']:>7} {r['idle_p99_ms']:>8.1f}ms "
              f"{r['busy_p50_ms']:>7.1f}ms "
              f"{r['busy_p99_ms']:>7.1f}ms {r['busy_max_ms']:>7.0f}ms {r['read_s']:>7.1f} {r['pages']:>6} "
              f"{r['rss_before_mb']:>8.0f}/{r['rss_peak_mb']:.0f}/{r['rss_after_mb']:.0f} "
              f"{helper_rss(r):>20} {'; '.join(errors)[:120] or '-'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
