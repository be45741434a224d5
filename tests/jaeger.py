"""A real Jaeger v2 (all-in-one: OTLP/gRPC in, in-memory store, query API out) on free loopback
ports, built once by scripts/jaeger.sh and cached (~/.cache/pynenc-sidecar/jaeger/<version>/)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support import ROOT, free_port, wait_until

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health_port}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_port}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def jaeger_binary() -> str:
    """scripts/jaeger.sh's cached binary (a cold build takes ~10-20 minutes on 2 cores)."""
    result = subprocess.run(["bash", str(ROOT / "scripts" / "jaeger.sh")], capture_output=True, text=True,
                            timeout=3600)
    assert result.returncode == 0, f"scripts/jaeger.sh could not build Jaeger:\n{result.stderr[-4000:]}"
    return result.stdout.strip().splitlines()[-1]


class Jaeger:
    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.ports = {name: free_port() for name in ("query_port", "query_grpc_port", "health_port", "otlp_port")}
        self.process: subprocess.Popen | None = None

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['otlp_port']}"

    def start(self) -> Jaeger:
        config = self.directory / "jaeger.yaml"
        config.write_text(CONFIG.format(**self.ports))
        self.log = self.directory / "jaeger.log"
        self.process = subprocess.Popen([self.binary, "--config", str(config)], stdout=self.log.open("w"),
                                        stderr=subprocess.STDOUT)
        wait_until(lambda: self.process.poll() is not None or self._healthy(), 60, "Jaeger to start")
        assert self.process.poll() is None, self.log.read_text()
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['health_port']}/status", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['query_port']}{path}", timeout=10) as reply:
            return json.loads(reply.read())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def wait_for(self, fetch, accept, what: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = fetch()
            if accept(value) or time.monotonic() > deadline:
                assert accept(value), f"Jaeger never returned {what}: {value!r}"[:4000]
                return value
            time.sleep(0.3)
