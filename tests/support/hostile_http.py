"""A hostile HTTP server on loopback: it reads a request and answers with what a test asks (a
trickle, silence, an endless or a compressed-to-nothing body), as a broken or malicious
server would. Each behaviour is a function of the connection."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Behaviour = Callable[[socket.socket], None]


def trickle(data: bytes, every: float = 0.2) -> Behaviour:
    """Send `data` one byte at a time, `every` seconds apart (each read times out never)."""

    def behave(connection: socket.socket) -> None:
        for byte in data:
            connection.sendall(bytes([byte]))
            time.sleep(every)

    return behave


def trickled_headers(every: float = 0.2) -> Behaviour:
    return trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" * 50, every)


def trickled_body(every: float = 0.2) -> Behaviour:
    def behave(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{")
        trickle(b" " * 100_000, every)(connection)

    return behave


def silent(connection: socket.socket) -> None:
    time.sleep(3600)


def huge(size: int) -> Behaviour:
    """A JSON answer of `size` bytes, sent as fast as the client reads."""

    def behave(connection: socket.socket) -> None:
        connection.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {size}"
            "\r\n\r\n".encode()
        )
        connection.sendall(b'{"data": "')
        block = b"x" * (1 << 20)
        sent = 10
        while sent < size - 2:
            part = block[: size - 2 - sent]
            connection.sendall(part)
            sent += len(part)
        connection.sendall(b'"}')

    return behave


def gzip_bomb(decoded: int = 200_000_000) -> Behaviour:
    """A few hundred kB on the wire that decompress to `decoded` bytes."""
    body = gzip.compress(b"0" * decoded, compresslevel=9)

    def behave(connection: socket.socket) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    return behave


def answer(status: int, body: bytes) -> Behaviour:
    def behave(connection: socket.socket) -> None:
        connection.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    return behave


@contextmanager
def hostile_server(behaviour: Behaviour) -> Iterator[str]:
    """`http://127.0.0.1:<port>` answering every connection with `behaviour`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stopping = threading.Event()

    def serve_one(connection: socket.socket) -> None:
        try:
            connection.recv(1 << 20)
            behaviour(connection)
        except OSError:
            pass  # the client gave up: what it should do
        finally:
            connection.close()

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(connection,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        listener.close()
