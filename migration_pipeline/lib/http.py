"""HTTP reads with a deadline and a size bound, for every answer this tool reads from a server
(Dagster+, a registry, a Dagster webserver).

`requests`' `timeout` bounds each socket read, not the exchange: a server that sends one byte
every few seconds keeps a request open for ever, and an answer of any size is read whole into
memory. Here each request has a **deadline** (a timer shuts the request's sockets when it
passes, which ends a read blocked on them, so the caller gets `DeadlineExceeded`, a
`requests.Timeout`) and a **size bound** on the body as decoded (`AnswerTooLarge`; a compressed
answer is bounded after decompression, by urllib3's streaming decoder).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# Far more than any answer this tool reads (a page of runs is ~50 kB, the locations document of
# a 1,000-location deployment ~1 MB), far less than what would exhaust memory once parsed.
MAX_ANSWER_BYTES = 16_000_000
_CHUNK = 1 << 16


class DeadlineExceeded(requests.exceptions.ReadTimeout):
    """No whole answer within the deadline (however slowly it was coming)."""


class AnswerTooLarge(requests.exceptions.RequestException):
    """An answer larger than the bound; it was not read further."""


# The sockets of the request running in this thread, while it runs under a deadline.
_current = threading.local()


class _Watched:
    """A connection whose socket a deadline may shut: recorded when it starts reading an
    answer (a new connection or one reused from the pool)."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        sockets = getattr(_current, "sockets", None)
        if sockets is not None and self.sock is not None:
            sockets.append(self.sock)
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _Connection(_Watched, HTTPConnection):
    pass


class _TlsConnection(_Watched, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}
        return manager


def bounded_session() -> requests.Session:
    """A `requests.Session` whose requests `bounded_request` can hold to a deadline."""
    session = requests.Session()
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[threading.Event]:
    """Shut the sockets of the requests made in this block when `seconds` pass; the event
    says whether that happened."""
    sockets: list[socket.socket] = []
    fired = threading.Event()

    def shut() -> None:
        fired.set()
        for sock in list(sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    previous = getattr(_current, "sockets", None)
    _current.sockets = sockets
    timer = threading.Timer(seconds, shut)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
        _current.sockets = previous


def bounded_request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int = MAX_ANSWER_BYTES,
    **kwargs: Any,
) -> requests.Response:
    """`session.request(...)`, its whole answer read within `deadline` seconds and at most
    `max_bytes` bytes (then `.content`, `.text` and `.json()` read what was read). Raises
    `DeadlineExceeded` (a `requests.Timeout`), `AnswerTooLarge`, or what `requests` raises."""
    with _deadline(deadline) as fired:
        try:
            response = session.request(
                method, url, stream=True, timeout=kwargs.pop("timeout", deadline), **kwargs
            )
            try:
                chunks, size = [], 0
                for chunk in response.iter_content(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise AnswerTooLarge(
                            f"the answer from {url} is larger than {max_bytes:,} bytes: not read"
                        )
                    chunks.append(chunk)
            finally:
                response.close()
        except (requests.RequestException, OSError) as error:
            if fired.is_set() and not isinstance(error, AnswerTooLarge):
                raise DeadlineExceeded(f"no whole answer from {url} within {deadline:g}s") from None
            raise
    response._content = b"".join(chunks)  # what .content, .text and .json() read
    return response
