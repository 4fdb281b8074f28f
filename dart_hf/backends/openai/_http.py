"""One HTTP request with a deadline for the whole exchange: connect, send, status, headers and body.

Why not a socket timeout: it bounds each read, so a server that drips a byte a second (or sends
headers and then nothing) holds a request forever. urllib3's `Timeout(total=...)` and httpx's
timeouts are per operation too (urllib3 re-arms the read timeout for every read of the body; httpx
documents whole-request deadlines only through anyio or threads). Abandoning a blocked request in a
worker thread would leak the thread and its socket for as long as the server keeps dripping. So the
request runs in the calling thread and a timer shuts its socket down at the deadline: the blocked
read returns at once, the thread is free, the socket is closed. Standard library only.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Optional


class DeadlineExceeded(TimeoutError):
    """The whole request took longer than its deadline."""


class ResponseTooLarge(ValueError):
    """The response body is longer than the caller allows (a broken or hostile server)."""


@dataclass
class Response:
    status: int
    body: bytes
    retry_after: Optional[float]  # seconds, from a numeric `Retry-After` header
    location: Optional[str] = None  # the `Location` header (a redirect's target)


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the caller backs off anyway
        return None


def request(
    method: str,
    url: str,
    body: Optional[bytes],
    headers: dict[str, str],
    timeout: float,
    max_bytes: Optional[int] = None,
) -> Response:
    """Send one request and read the whole response within `timeout` seconds, or raise `DeadlineExceeded`.

    Connection errors raise `OSError` (or `http.client.HTTPException` for a broken response); a body
    longer than `max_bytes` raises `ResponseTooLarge` without being read further; any other
    complete response, whatever its status, is returned. `url` must carry no credentials (send
    them in `headers`).
    """
    parts = urllib.parse.urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    started = time.monotonic()
    conn = cls(parts.hostname or "localhost", parts.port, timeout=max(timeout, 1e-3))
    fired = threading.Event()

    def expire() -> None:
        fired.set()  # first: a connect still under way sees it when it returns
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv on this socket
            except OSError:
                pass

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        conn.connect()
        if fired.is_set():
            raise DeadlineExceeded()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        declared = resp.getheader("Content-Length")
        if max_bytes is not None and declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(
                f"response body of {int(declared)} bytes (Content-Length) exceeds the cap of {max_bytes}"
            )
        data = resp.read() if max_bytes is None else resp.read(max_bytes + 1)
        if fired.is_set():  # the shutdown may surface as a short, "complete" read
            raise DeadlineExceeded()
        if max_bytes is not None and len(data) > max_bytes:
            raise ResponseTooLarge(f"response body longer than the cap of {max_bytes} bytes")
        return Response(resp.status, data, _retry_after(resp.getheader("Retry-After")), resp.getheader("Location"))
    except (OSError, http.client.HTTPException) as err:
        if fired.is_set() or isinstance(err, (socket.timeout, TimeoutError)):
            raise DeadlineExceeded(
                f"no complete response within {timeout:g} s (after {time.monotonic() - started:.1f} s)"
            ) from None
        raise
    finally:
        timer.cancel()
        conn.close()
