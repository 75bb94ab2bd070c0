"""Web pages by URL: only from allow-listed hosts, every redirect hop checked again, the body capped while it
streams, and one deadline over the whole fetch."""
from __future__ import annotations

import email.message
import fnmatch
import mimetypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import httpx

from temper.knowledge.ingest.common import stem
from temper.knowledge.sources import FetchError

_MB = 1024 * 1024
_MIME = mimetypes.MimeTypes()  # Python's own table, not the machine's /etc/mime.types: the same names everywhere
_GENERIC = frozenset({"application/octet-stream", "binary/octet-stream", "text/plain"})  # the URL's name says more
_HEADERS = {"User-Agent": "Temper knowledge-base fetcher"}


@dataclass
class FetchPolicy:
    """Which URLs may be fetched, and how much.

    ``allow`` holds host patterns (``docs.example.com``; ``*.example.org`` for the subdomains of example.org;
    ``*`` for any host), which match on any port, or URL prefixes (``https://example.com/docs/``: that scheme,
    host and port, and paths under that path). An empty list allows no URL at all.
    """

    allow: list[str]
    max_bytes: int = 10 * _MB
    timeout_s: float = 20.0
    max_redirects: int = 5


@dataclass
class Fetched:
    url: str  # the final URL, after redirects
    data: bytes
    filename: str  # with an extension that suits the content type, for ParserRegistry.for_file
    media_type: str | None  # Content-Type without parameters, lower-case
    metadata: dict[str, Any]  # url, and content_type, etag, last_modified, redirected_from when there are any


def fetch_url(url: str, policy: FetchPolicy) -> Fetched:
    """GET ``url`` under ``policy``; raise ``FetchError`` saying what to change when it is refused or fails.

    The fetch runs in a worker thread that the caller waits for at most ``timeout_s``: httpx's timeouts bound
    each read, not their sum, so a server trickling bytes could otherwise hold the caller much longer. A worker
    left behind stops at its next read.
    """
    check_allowed(url, policy)
    stop = threading.Event()
    pool = ThreadPoolExecutor(1, thread_name_prefix="temper-fetch")
    try:
        future = pool.submit(_fetch, url, policy, time.monotonic() + policy.timeout_s, stop)
    finally:
        pool.shutdown(wait=False)
    try:
        return future.result(timeout=policy.timeout_s)
    except FutureTimeout:
        stop.set()
        raise _timed_out(url, policy) from None


def check_allowed(url: str, policy: FetchPolicy) -> None:
    """Raise ``FetchError`` unless ``url`` is an http(s) URL that the allow-list admits."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as e:
        raise FetchError(f"{url!r} is not a valid URL ({e})") from e
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"{url}: only http and https URLs can be fetched")
    if not parsed.host:
        raise FetchError(f"{url}: the URL has no host")
    if not policy.allow:
        raise FetchError(f"fetching URLs is turned off: the allow-list (TEMPER_KB_URL_ALLOW) is empty; "
                         f"add {parsed.host} to it to fetch {url}")
    if not any(_matches(parsed, pattern.strip()) for pattern in policy.allow if pattern.strip()):
        raise FetchError(f"host {parsed.host} is not in the allow-list (TEMPER_KB_URL_ALLOW), so {url} "
                         "cannot be fetched; add the host to the list")


def _matches(url: httpx.URL, pattern: str) -> bool:
    hosts = {url.host.lower(), url.raw_host.decode("ascii").lower()}  # an IDN host as written and as punycode
    if "://" not in pattern:
        return any(fnmatch.fnmatchcase(host, pattern.lower().rstrip("/")) for host in hosts)
    try:
        prefix = httpx.URL(pattern)
    except httpx.InvalidURL:
        return False
    if (url.scheme, url.port) != (prefix.scheme, prefix.port) or prefix.host.lower() not in hosts:
        return False
    base = prefix.path.rstrip("/")
    return url.path == prefix.path or url.path.startswith(base + "/")


def _fetch(url: str, policy: FetchPolicy, deadline: float, stop: threading.Event) -> Fetched:
    redirected_from: list[str] = []
    try:
        with httpx.Client(headers=_HEADERS, follow_redirects=False) as client:
            request = client.build_request("GET", url)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or stop.is_set():
                    raise _timed_out(url, policy)
                request.extensions["timeout"] = httpx.Timeout(remaining).as_dict()
                response = client.send(request, stream=True)
                try:
                    if response.next_request is not None:
                        if len(redirected_from) >= policy.max_redirects:
                            raise FetchError(f"{url}: more than {policy.max_redirects} redirects")
                        redirected_from.append(str(response.url))
                        request = response.next_request
                        try:
                            check_allowed(str(request.url), policy)
                        except FetchError as e:
                            raise FetchError(f"{response.url} redirects to {request.url}: {e}") from None
                        continue
                    if not response.is_success:
                        raise FetchError(f"{response.url}: HTTP {response.status_code} {response.reason_phrase}"
                                         .rstrip())
                    data = _read(response, policy, deadline, stop)
                finally:
                    response.close()
                return _fetched(response, data, redirected_from)
    except httpx.TimeoutException:
        raise _timed_out(url, policy) from None
    except httpx.HTTPError as e:
        raise FetchError(f"{url} could not be fetched: {e}") from e


def _read(response: httpx.Response, policy: FetchPolicy, deadline: float, stop: threading.Event) -> bytes:
    """The decoded body, refused as soon as it is known to pass ``max_bytes`` (by Content-Length or by what
    has arrived: a compressed body is counted as it inflates)."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > policy.max_bytes:
        raise _too_large(response.url, policy, f" ({_size(int(length))})")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > policy.max_bytes:
            raise _too_large(response.url, policy, "")
        if stop.is_set() or time.monotonic() > deadline:
            raise _timed_out(str(response.url), policy)
    return bytes(body)


def _fetched(response: httpx.Response, data: bytes, redirected_from: list[str]) -> Fetched:
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower() or None
    metadata: dict[str, Any] = {"url": str(response.url)}
    for key, header in (("content_type", "content-type"), ("etag", "etag"), ("last_modified", "last-modified")):
        if value := response.headers.get(header):
            metadata[key] = value
    if redirected_from:
        metadata["redirected_from"] = redirected_from
    return Fetched(url=str(response.url), data=data, filename=_filename(response, media_type),
                   media_type=media_type, metadata=metadata)


def _filename(response: httpx.Response, media_type: str | None) -> str:
    """The server's attachment name, else the URL's last path segment ("page" for none), with its extension
    replaced when the content type says otherwise (``/docs/intro`` served as HTML is ``intro.html``)."""
    disposition = email.message.Message()
    disposition["content-disposition"] = response.headers.get("content-disposition", "")
    name = disposition.get_filename() or response.url.path.rsplit("/", 1)[-1]
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "page"
    guessed = _MIME.guess_type(name, strict=False)[0] if "." in name.strip(".") else None
    if media_type is None or media_type in _GENERIC or guessed == media_type:
        return name
    extension = _MIME.guess_extension(media_type, strict=False)
    return stem(name) + extension if extension else name


def _timed_out(url: str, policy: FetchPolicy) -> FetchError:
    return FetchError(f"{url}: timed out after {policy.timeout_s:g} s")


def _too_large(url: httpx.URL, policy: FetchPolicy, actual: str) -> FetchError:
    return FetchError(f"{url} is larger than {_size(policy.max_bytes)}{actual}, the most a fetched URL may be")


def _size(n: int) -> str:
    if n >= _MB:
        return f"{n / _MB:.3g} MB"
    return f"{n / 1024:.3g} KB" if n >= 1024 else f"{n} bytes"
