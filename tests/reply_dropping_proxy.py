"""TCP proxies in front of redis-servers that can lose one reply: the command reaches Redis and
runs, and the client's connection is closed instead of the reply being relayed, as when a
master dies between running a write and answering it. Loopback only; threads stop with stop()."""

from __future__ import annotations

import socket
import threading


class ReplyDroppingProxies:
    def __init__(self, upstream_ports: list[int]) -> None:
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self.dropped = 0  # replies lost so far
        self._sockets: list[socket.socket] = []
        self._listeners = {port: socket.create_server(("127.0.0.1", 0)) for port in upstream_ports}
        self.port_for = {port: listener.getsockname()[1] for port, listener in self._listeners.items()}

    def __enter__(self) -> ReplyDroppingProxies:
        for upstream, listener in self._listeners.items():
            threading.Thread(target=self._accept, args=(listener, upstream), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def drop_reply_to(self, marker: bytes) -> None:
        """Lose the reply to the next command (on any proxy) whose bytes hold `marker`."""
        with self._lock:
            self._marker = marker

    def stop(self) -> None:
        with self._lock:
            sockets = [*self._listeners.values(), *self._sockets]
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket, upstream_port: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", upstream_port))
            except OSError:
                return
            with self._lock:
                self._sockets += [client, upstream]
            pair = {"drop": False}
            threading.Thread(target=self._requests, args=(client, upstream, pair), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, pair), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, pair: dict[str, bool]) -> None:
        while chunk := _recv(client):
            with self._lock:
                if self._marker is not None and self._marker in chunk:
                    self._marker = None
                    pair["drop"] = True  # before the command goes on: its reply may come at once
            try:
                upstream.sendall(chunk)
            except OSError:
                break
        _close(client, upstream)

    def _replies(self, upstream: socket.socket, client: socket.socket, pair: dict[str, bool]) -> None:
        while chunk := _recv(upstream):
            if pair["drop"]:
                with self._lock:
                    self.dropped += 1
                break
            try:
                client.sendall(chunk)
            except OSError:
                break
        _close(client, upstream)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
