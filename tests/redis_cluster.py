"""A real Redis Cluster for the tests: 3 masters and 3 replicas on free loopback ports.

Each node is a redis-server with `--cluster-enabled yes` in a directory of its own; the
cluster is made by `redis-cli --cluster create ... --cluster-replicas 1` and is ready when
every node's `cluster info` says `cluster_state:ok`. Nodes are stopped by PID.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from redis.crc import key_slot

from support import RedisServer, wait_until

# A short node timeout, so a killed master's replica is promoted within seconds.
NODE_TIMEOUT_MS = 2000


def _free_cluster_port() -> int:
    """A port free for the node and for its cluster bus (port + 10000)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def redis_cli(port: int, *args: str, timeout: float = 10) -> str:
    done = subprocess.run([shutil.which("redis-cli") or "redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=timeout)
    return done.stdout


@dataclass
class RedisCluster:
    masters: int = 3
    replicas_per_master: int = 1
    # "always": each write is on disk before its reply, so a master killed and restarted has
    # every value it acknowledged (the failover test, which claims no loss); "everysec" may
    # lose the last second of a restarted master's writes (cheaper: the session's cluster).
    appendfsync: str = "everysec"
    nodes: list[RedisServer] = field(default_factory=list)
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="psc-cluster-"))

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """A seed node's URL: the sidecar discovers the rest (--redis-cluster)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    @property
    def seeds(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> RedisCluster:
        count = self.masters * (1 + self.replicas_per_master)
        for _ in range(count):
            port = _free_cluster_port()
            # AOF on, as a production cluster has: a killed master restarted without its data
            # may win back its slots for a moment and make its successor sync an empty dataset
            # (seen here: acknowledged values lost on a rejoin), Redis's documented hazard of
            # masters without persistence.
            node = RedisServer(port=port, directory=tempfile.mkdtemp(dir=self.directory), extra_args=[
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--appendonly", "yes", "--appendfsync", self.appendfsync])
            self.nodes.append(node.start())
        create = subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in self.ports),
             "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        if create.returncode != 0:
            self.cleanup()
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout}{create.stderr}")
        self.wait_ok()
        return self

    def running(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process and node.process.poll() is None]

    def state_ok(self, node: RedisServer) -> bool:
        try:
            return "cluster_state:ok" in redis_cli(node.port, "cluster", "info", timeout=2)
        except subprocess.TimeoutExpired:
            return False

    def wait_ok(self, timeout: float = 60) -> None:
        """Until every running node says the cluster is ok and agrees on the masters."""
        def ok() -> bool:
            nodes = self.running()
            views = {self.master_ports_seen_by(n) for n in nodes}
            return all(self.state_ok(node) for node in nodes) and len(views) == 1
        wait_until(ok, timeout, "redis cluster state ok")
        wait_until(self.replicas_online, timeout, "every master's replicas online")

    def replicas_online(self) -> bool:
        """Every running master has its replicas connected and in sync (WAIT can succeed)."""
        for node in self.running():
            info = redis_cli(node.port, "info", "replication")
            if "role:master" in info and info.count("state=online") < self.replicas_per_master:
                return False
        return True

    def master_ports_seen_by(self, node: RedisServer) -> tuple[int, ...]:
        ports = []
        for line in redis_cli(node.port, "cluster", "nodes", timeout=2).splitlines():
            parts = line.split()
            if len(parts) > 8 and "master" in parts[2] and "fail" not in parts[2]:
                ports.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
        return tuple(sorted(ports))

    def master_of_slot(self, slot: int) -> RedisServer:
        node = self.running()[0]
        for line in redis_cli(node.port, "cluster", "nodes").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2]:
                continue
            for span in parts[8:]:
                low, _, high = span.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no master serves slot {slot}")

    def node_is_master(self, node: RedisServer) -> bool:
        return "role:master" in redis_cli(node.port, "info", "replication")

    def slots_of(self, master: RedisServer) -> set[int]:
        """The slots a master serves, as the cluster sees it now."""
        slots: set[int] = set()
        for line in redis_cli(master.port, "cluster", "nodes").splitlines():
            parts = line.split()
            if "myself" in parts[2]:
                for span in parts[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit():
                        slots.update(range(int(low), int(high or low) + 1))
        return slots

    def slot_of_workflow(self, app_id: str, workflow_id: str) -> int:
        """The slot of a workflow's hash tag (its record, data and main task)."""
        from pynenc_sidecar.core.positions import escape

        return key_slot(f"psc:{{{escape(app_id)}:{escape(workflow_id)}}}:data".encode())

    def key_slot(self, key: str) -> int:
        return int(redis_cli(self.running()[0].port, "cluster", "keyslot", key).strip())

    def kill(self, node: RedisServer) -> None:
        node.stop(signal.SIGKILL)

    def restart(self, node: RedisServer) -> None:
        """Start a killed node again on its port and directory (it rejoins from nodes.conf)."""
        node.process = None
        node.start()

    def wait_promoted(self, old_master: RedisServer, timeout: float = 30) -> None:
        """Until a replica took over the dead master's slots and the cluster is ok again."""
        def promoted() -> bool:
            nodes = self.running()
            return all(old_master.port not in self.master_ports_seen_by(n) and self.state_ok(n) for n in nodes)
        wait_until(promoted, timeout, "a replica promoted in place of the killed master")

    def flushall(self) -> None:
        for node in self.running():
            if "role:master" in redis_cli(node.port, "info", "replication"):
                redis_cli(node.port, "flushall")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


if __name__ == "__main__":  # a cluster for trying things by hand: Ctrl-C stops it
    cluster = RedisCluster().start()
    print("cluster up:", cluster.seeds, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        cluster.cleanup()
