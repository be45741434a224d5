#!/usr/bin/env python3
"""A bounded soak: ghz at ~80% of the sidecar's measured capacity for a few minutes.

    .venv/bin/python scripts/soak.py                 # 3 min at 80% (the figures in docs/reliability.md)
    .venv/bin/python scripts/soak.py --quick         # 20 s, for the smoke test
    .venv/bin/python scripts/soak.py --duration 10m --load 0.7 --json soak.json

It starts its own redis-server and sidecar on free loopback ports, finds ghz (or installs it
with `go install github.com/bojand/ghz/cmd/ghz@v0.121.0`), and runs a mix of four RPCs at once,
one ghz process each: Random, Record and ExecuteTask at fresh positions (first records) and
SetData over a rotating set of keys.

1. capacity: the four, unthrottled, for --capacity-seconds; each one's RPS is its capacity
   in this mix (on this machine, with ghz beside the server);
2. soak: the four at --load x their capacity (ghz --rps) for --duration, the server's RSS
   (/proc/PID/status VmRSS) sampled every second.

It prints a table and exits 1 unless every call succeeded and the server's RSS grew by at
most --max-rss-growth-mb from the end of the warm-up (--warmup) to the end. Every process it
starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from support import RedisServer, SidecarServer  # noqa: E402

GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz@v0.121.0"
SERVICE = "pynenc.sidecar.v1.DeterministicExecutorService"
APP = "soak"


@dataclass(frozen=True)
class Case:
    label: str
    method: str
    data: dict


def cases(tag: str) -> list[Case]:
    """Fresh positions: a new workflow every 1,000 requests, sequence 1..1000 within it."""
    workflow = f"soak-{tag}-{{{{div .RequestNumber 1000}}}}"
    seq = "{{add (mod .RequestNumber 1000) 1}}"

    def pos(kind: str) -> dict:
        return {"app_id": APP, "workflow": {"workflow_id": f"{kind}-{workflow}"}, "sequence": seq}

    return [
        Case("Random", "Random", {"position": pos("random")}),
        Case("Record", "Record", {"position": pos("record"), "operation": "soak",
                                  "value_json": "{\"n\":{{.RequestNumber}},\"pad\":\"0123456789abcdef\"}"}),
        Case("ExecuteTask", "ExecuteTask", {"position": pos("task"), "task_id": "soak.step",
                                            "arguments_json": "{\"n\":{{.RequestNumber}}}", "runner_id": "soak"}),
        Case("SetData", "SetData", {"app_id": APP, "workflow_id": f"data-{tag}-{{{{mod .RequestNumber 100}}}}",
                                    "key": "k{{mod .RequestNumber 10}}", "value_json": "{{.RequestNumber}}"}),
    ]


def parse_seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip()
    if text[-1:] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def find_or_install_ghz() -> str:
    gopath = os.environ.get("GOPATH") or os.path.expanduser("~/go")
    for candidate in (os.environ.get("GHZ"), shutil.which("ghz"), os.path.join(gopath, "bin", "ghz")):
        if candidate and os.path.exists(candidate):
            return candidate
    if shutil.which("go") is None:
        raise SystemExit("ghz not found and Go is not installed: install ghz (https://ghz.sh) or Go")
    print(f"==> installing ghz: go install {GHZ_MODULE}", flush=True)
    subprocess.run(["go", "install", GHZ_MODULE], check=True, timeout=900)
    return os.path.join(gopath, "bin", "ghz")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (seconds since start, kB)
        self.stop = threading.Event()
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - self.started, rss_kb(self.pid)))
            self.stop.wait(self.interval)

    def at(self, second: float) -> int:
        """The first sample taken at or after `second`."""
        return next((kb for t, kb in self.samples if t >= second), self.samples[-1][1])


def ghz_command(ghz: str, protoset: Path, address: str, case: Case, seconds: float, concurrency: int,
                rps: float | None) -> list[str]:
    cmd = [ghz, "--insecure", "--protoset", str(protoset), "--call", f"{SERVICE}.{case.method}",
           "-d", json.dumps(case.data), "-c", str(concurrency), "--connections", "1", "-z", f"{seconds}s",
           "--duration-stop", "wait",  # in-flight calls finish: the end of the run is not an error
           "-t", "10s", "-O", "json", "--cpus", "1"]
    if rps:
        cmd += ["--rps", str(max(1, int(rps)))]
    return [*cmd, address]


def run_mix(ghz: str, protoset: Path, address: str, mix: list[Case], seconds: float, concurrency: int,
            rates: dict[str, float] | None = None) -> dict[str, dict]:
    """The cases at once (one ghz each); their ghz JSON reports by label."""
    procs = {}
    for case in mix:
        cmd = ghz_command(ghz, protoset, address, case, seconds, concurrency, rates and rates[case.label])
        procs[case.label] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reports = {}
    try:
        for label, proc in procs.items():
            out, err = proc.communicate(timeout=seconds + 120)
            if proc.returncode not in (0, 1) or not out.strip():  # ghz exits 1 when some calls failed
                raise RuntimeError(f"ghz {label} failed ({proc.returncode}): {err.strip()[-2000:]}")
            reports[label] = json.loads(out)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return reports


def summarize(report: dict) -> dict:
    codes = dict(report.get("statusCodeDistribution") or {})
    errors = sum(n for code, n in codes.items() if code != "OK") + (
        0 if codes else sum((report.get("errorDistribution") or {}).values())
    )
    latency = {int(p["percentage"]): p["latency"] / 1e6 for p in report.get("latencyDistribution") or []}
    return {"calls": report["count"], "rps": report["rps"], "errors": errors, "codes": codes,
            "error_messages": dict(list((report.get("errorDistribution") or {}).items())[:5]),
            "p50_ms": latency.get(50), "p99_ms": latency.get(99), "average_ms": report["average"] / 1e6}


def slope_mb_per_min(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 3:
        return 0.0
    times = [t for t, _ in samples]
    mbs = [kb / 1024 for _, kb in samples]
    return statistics.linear_regression(times, mbs).slope * 60


def fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 s soak, 4 s capacity, 5 s warm-up (smoke test)")
    parser.add_argument("--duration", default=None, help="soak length, e.g. 180s, 3m (default 3m; --quick 20s)")
    parser.add_argument("--capacity-seconds", type=float, default=None, help="capacity run length (default 10)")
    parser.add_argument("--warmup", default=None, help="RSS baseline is taken this far into the soak (default 30s)")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the measured capacity (default 0.8)")
    parser.add_argument("--concurrency", type=int, default=8, help="ghz workers per RPC (default 8)")
    parser.add_argument("--max-rss-growth-mb", type=float, default=16.0,
                        help="fail if the server's RSS grows more than this after the warm-up (default 16)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args(argv)
    duration = parse_seconds(args.duration or ("20s" if args.quick else "3m"))
    capacity_s = args.capacity_seconds or (4.0 if args.quick else 10.0)
    warmup = parse_seconds(args.warmup or ("5s" if args.quick else "30s"))
    if not 0 < args.load <= 1 or warmup >= duration:
        parser.error("--load must be in (0, 1] and --warmup shorter than --duration")

    ghz = find_or_install_ghz()
    tag = uuid.uuid4().hex[:8]
    scratch = Path(tempfile.mkdtemp(prefix="psc-soak-"))
    redis = RedisServer().start()
    server = SidecarServer(redis.url, extra_args=["--log-format", "json", "--log-level", "WARNING"]).start()
    try:
        from ghz_protoset import fetch_protoset

        protoset = scratch / "sidecar.protoset"
        protoset.write_bytes(fetch_protoset(server.address))
        mix = cases(tag)
        print(f"==> soak: sidecar pid {server.process.pid} on {server.address}, redis pid {redis.process.pid}; "
              f"ghz {ghz}; {os.cpu_count()} CPUs", flush=True)

        print(f"==> capacity: {len(mix)} RPCs at once, unthrottled, {capacity_s:g}s, c={args.concurrency} each",
              flush=True)
        capacity = {label: summarize(r) for label, r in
                    run_mix(ghz, protoset, server.address, mix, capacity_s, args.concurrency).items()}
        rates = {label: c["rps"] * args.load for label, c in capacity.items()}
        print("    " + ", ".join(f"{k} {v['rps']:,.0f}/s" for k, v in capacity.items())
              + f"; total {sum(c['rps'] for c in capacity.values()):,.0f}/s", flush=True)

        rss_before = rss_kb(server.process.pid)
        sampler = RssSampler(server.process.pid)
        sampler.start()
        print(f"==> soak: {duration:g}s at {args.load:.0%} of capacity "
              f"(total {sum(rates.values()):,.0f}/s); RSS baseline after {warmup:g}s", flush=True)
        soak = {label: summarize(r) for label, r in
                run_mix(ghz, protoset, server.address, mix, duration, args.concurrency, rates).items()}
        sampler.stop.set()
        sampler.join()
        rss_end = rss_kb(server.process.pid)
        alive = server.process.poll() is None
    finally:
        code = server.stop()
        redis.cleanup()
        shutil.rmtree(scratch, ignore_errors=True)

    rss_warm = sampler.at(warmup)
    after_warmup = [(t, kb) for t, kb in sampler.samples if t >= warmup]
    report = {
        "mode": "quick" if args.quick else "full", "duration_s": duration, "load": args.load,
        "concurrency_per_rpc": args.concurrency, "cpus": os.cpu_count(),
        "capacity": capacity, "target_rps": rates, "soak": soak,
        "calls": sum(s["calls"] for s in soak.values()), "errors": sum(s["errors"] for s in soak.values()),
        "rss_mb": {"before": rss_before / 1024, "after_warmup": rss_warm / 1024, "end": rss_end / 1024,
                   "peak": max(kb for _, kb in sampler.samples) / 1024},
        "rss_growth_mb": (rss_end - rss_warm) / 1024, "rss_slope_mb_per_min": slope_mb_per_min(after_warmup),
        "max_rss_growth_mb": args.max_rss_growth_mb, "server_alive": alive, "server_exit_code": code,
    }
    ok = report["errors"] == 0 and report["rss_growth_mb"] <= args.max_rss_growth_mb and alive and code == 0
    report["passed"] = ok

    print()
    print("| method | capacity rps | target rps | achieved rps | calls | errors | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label in capacity:
        c, s = capacity[label], soak[label]
        print(f"| {label} | {fmt(c['rps'], 0)} | {fmt(rates[label], 0)} | {fmt(s['rps'], 0)} | {s['calls']:,} | "
              f"{s['errors']} | {fmt(s['p50_ms'], 2)} | {fmt(s['p99_ms'], 2)} |")
    total = sum(s["rps"] for s in soak.values())
    print(f"| **all** | {fmt(sum(c['rps'] for c in capacity.values()), 0)} | {fmt(sum(rates.values()), 0)} | "
          f"{fmt(total, 0)} | {report['calls']:,} | {report['errors']} | | |")
    rss = report["rss_mb"]
    print()
    print(f"server RSS (MB): before {rss['before']:.1f} · after {warmup:g}s warm-up {rss['after_warmup']:.1f} · "
          f"end {rss['end']:.1f} · peak {rss['peak']:.1f} · growth after warm-up {report['rss_growth_mb']:+.1f} "
          f"(limit {args.max_rss_growth_mb:g}) · trend {report['rss_slope_mb_per_min']:+.2f} MB/min")
    for label, s in soak.items():
        if s["errors"]:
            print(f"errors in {label}: {s['codes']} {s['error_messages']}")
    print(f"result: {'PASS' if ok else 'FAIL'} (server exit code {code})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
