"""Credentials in URLs: taken out before a request is made, sent as HTTP Basic auth, never shown.

`http://alice:PASSWORD@host:8000` is a common way to reach a server behind a proxy with a password.
The userinfo part must reach the server (as an `Authorization: Basic` header, which `http.client`
does not derive from a URL) and nothing else: every message, repr, row, card, report and log shows
the URL as `http://***@host:8000`. `Secrets` also scrubs the raw values out of text that came back
from elsewhere (a server that echoes the request headers in its error message).
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable
from typing import Optional

MASK = "***"
# scheme://userinfo@ with the userinfo running to the last "@" before the path (as `urlsplit` reads it)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s?#]*@)")
_MIN_SECRET = 3  # shorter values would mask ordinary text; they are still masked inside URLs


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it replaced by `***` (`http://***@host:8000/path`)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", str(text))


def split_credentials(url: str) -> tuple[str, Optional[str]]:
    """`(url without its userinfo, "Basic ..." header value or None)`; percent-escapes in the userinfo are decoded."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    user, password = urllib.parse.unquote(user), urllib.parse.unquote(password)
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=hostport)), f"Basic {token}"


class Secrets:
    """Known secret values (passwords, keys, auth headers) scrubbed out of any text, plus URL userinfo."""

    def __init__(self, values: Iterable[Optional[str]] = ()) -> None:
        self._values: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, value: Optional[str]) -> None:
        if value and len(value) >= _MIN_SECRET:
            self._values.add(value)

    def add_url(self, url: str) -> None:
        """The userinfo of `url` (raw and decoded: user:password and the password) and its Basic token."""
        netloc = urllib.parse.urlsplit(url).netloc
        if "@" not in netloc:
            return
        userinfo = netloc.rpartition("@")[0]
        _, header = split_credentials(url)
        password = userinfo.partition(":")[2]
        for value in (userinfo, urllib.parse.unquote(userinfo), password, urllib.parse.unquote(password)):
            self.add(value)
        if header:
            self.add(header.split(" ", 1)[1])

    def scrub(self, text: str) -> str:
        """`text` with URL userinfo masked and every known value replaced by `***` (longest first)."""
        text = redact(text)
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    def __repr__(self) -> str:
        return f"Secrets({len(self._values)} values)"
