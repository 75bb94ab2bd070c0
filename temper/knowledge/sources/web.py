"""Web pages by URL: only from allow-listed hosts, only from public addresses unless listed explicitly (checked
after resolution, and the connection made to the address checked), every redirect hop checked again, the body
capped while it streams, one deadline over the whole fetch, and no credentials in what is shown or stored."""
from __future__ import annotations

import email.message
import fnmatch
import ipaddress
import mimetypes
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from temper.knowledge.ingest.common import stem
from temper.knowledge.sources import FetchError
from temper.knowledge.sources.urls import IPAddress, a_kind, normal_path, redact_url, special_kind, strip_credentials

_MB = 1024 * 1024
_MIME = mimetypes.MimeTypes()  # Python's own table, not the machine's /etc/mime.types: the same names everywhere
_GENERIC = frozenset({"application/octet-stream", "binary/octet-stream", "text/plain"})  # the URL's name says more
_HEADERS = {"User-Agent": "Temper knowledge-base fetcher"}
_LISTING = ("list the host by its exact name or address in TEMPER_KB_URL_ALLOW (or its network, e.g. 10.0.0.0/8) "
            "to fetch from it")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, as the system resolver answers."""
    return list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)))


@dataclass
class FetchPolicy:
    """Which URLs may be fetched, and how much.

    ``allow`` holds host patterns (``docs.example.com``; ``*.example.org`` for the subdomains of example.org;
    ``*`` for any host), which match on any port, addresses and networks (``127.0.0.1``, ``[::1]``,
    ``10.0.0.0/8``), or URL prefixes (``https://example.com/docs/``: that scheme, host and port, and paths
    under that path once percent-escapes and dot segments are resolved). An empty list allows no URL at all.

    A host admitted by a wildcard must resolve to public addresses only: loopback, private, link-local and the
    other special addresses (``urls.special_kind``) are reached when the host is listed by its exact name or in
    a URL prefix, or the address is listed (alone or in a network). ``resolve`` finds a host's addresses.
    """

    allow: list[str]
    max_bytes: int = 10 * _MB
    timeout_s: float = 20.0
    max_redirects: int = 5
    resolve: Callable[[str, int], list[str]] = field(default=system_resolve, repr=False)


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
    explicit = _admit(url, policy)
    stop = threading.Event()
    pool = ThreadPoolExecutor(1, thread_name_prefix="temper-fetch")
    try:
        future = pool.submit(_fetch, url, explicit, policy, time.monotonic() + policy.timeout_s, stop)
    finally:
        pool.shutdown(wait=False)
    try:
        return future.result(timeout=policy.timeout_s)
    except FutureTimeout:
        stop.set()
        raise _timed_out(url, policy) from None


def check_allowed(url: str, policy: FetchPolicy) -> None:
    """Raise ``FetchError`` unless ``url`` is an http(s) URL that the allow-list admits (a literal address or
    ``localhost`` only when it may be reached; a name's addresses are checked when it is fetched)."""
    _admit(url, policy)


@dataclass
class _Rules:
    patterns: list[str] = field(default_factory=list)  # host patterns with a wildcard
    names: set[str] = field(default_factory=set)  # hosts listed by exact name
    networks: list[IPNetwork] = field(default_factory=list)  # addresses and networks
    prefixes: list[httpx.URL] = field(default_factory=list)

    @classmethod
    def of(cls, allow: Iterable[str]) -> _Rules:
        rules = cls()
        for entry in (e.strip() for e in allow):
            if "://" in entry:
                try:
                    rules.prefixes.append(httpx.URL(entry))
                except httpx.InvalidURL:
                    pass
            elif entry:
                try:
                    rules.networks.append(ipaddress.ip_network(entry.removeprefix("[").removesuffix("]"),
                                                               strict=False))
                except ValueError:
                    pattern = entry.lower().rstrip("/")
                    if any(c in pattern for c in "*?["):
                        rules.patterns.append(pattern)
                    else:
                        rules.names.add(pattern)
        return rules

    def listed(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.networks)


def _admit(url: str, policy: FetchPolicy) -> bool:
    """``check_allowed``; True when ``url`` is admitted explicitly (its exact host name, or a URL prefix), so its
    host may resolve to any address."""
    shown = redact_url(url)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as e:
        raise FetchError(f"{shown!r} is not a valid URL ({e})") from e
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"{shown}: only http and https URLs can be fetched")
    if not parsed.host:
        raise FetchError(f"{shown}: the URL has no host")
    if not policy.allow:
        raise FetchError(f"fetching URLs is turned off: the allow-list (TEMPER_KB_URL_ALLOW) is empty; "
                         f"add {parsed.host} to it to fetch {shown}")
    rules = _Rules.of(policy.allow)
    hosts = {parsed.host.lower(), parsed.raw_host.decode("ascii").lower()}  # an IDN host as written and as punycode
    address = _address(parsed.raw_host.decode("ascii"))
    explicit = bool(hosts & rules.names) or any(_under(parsed, hosts, prefix) for prefix in rules.prefixes)
    if not (explicit or any(fnmatch.fnmatchcase(host, p) for host in hosts for p in rules.patterns)
            or (address is not None and rules.listed(address))):
        raise FetchError(f"host {parsed.host} is not in the allow-list (TEMPER_KB_URL_ALLOW), so {shown} "
                         "cannot be fetched; add the host to the list")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    kind = special_kind(address) if address is not None else (
        "loopback" if host == "localhost" or host.endswith(".localhost") else None)
    if kind and not explicit and not (address is not None and rules.listed(address)):
        raise FetchError(f"{shown}: {parsed.host} is {a_kind(kind)} address, which is not fetched unless listed; "
                         + _LISTING)
    return explicit


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _under(url: httpx.URL, hosts: set[str], prefix: httpx.URL) -> bool:
    """``url`` is on the prefix's scheme, host and port, at its path or below (both paths normalised)."""
    if (url.scheme, url.port) != (prefix.scheme, prefix.port) or prefix.host.lower() not in hosts:
        return False
    path, base = (normal_path(u.raw_path.decode("ascii").split("?", 1)[0]) for u in (url, prefix))
    return path == base or path.startswith(base.rstrip("/") + "/")


class _PinnedBackend(httpcore.SyncBackend):
    """Opens each connection to addresses found by one lookup and checked against the policy, so a second DNS
    answer cannot differ from the one checked; TLS still sends and verifies the URL's host name."""

    def __init__(self, policy: FetchPolicy, explicit: bool) -> None:
        self.policy = policy
        self.explicit = explicit  # whether the request being sent was admitted explicitly (``_admit``)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in self._checked(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as e:  # the next address, as the system's own connect would
                error = e
        assert error is not None
        raise error

    def _checked(self, host: str, port: int) -> list[str]:
        try:
            found = self.policy.resolve(host, port)
        except OSError as e:
            raise FetchError(f"{host} cannot be resolved ({e})") from None
        if not found:
            raise FetchError(f"{host} resolves to no address")
        rules = _Rules.of(self.policy.allow)
        for address in found:
            ip = ipaddress.ip_address(address)
            kind = special_kind(ip)
            if kind and not self.explicit and not rules.listed(ip):
                raise FetchError(f"{host} resolves to {ip}, {a_kind(kind)} address, which is not fetched unless "
                                 "listed; " + _LISTING)
        return found


class _Transport(httpx.HTTPTransport):
    """httpx's transport, connecting through ``backend`` and keeping no connection for a later request (each
    request's addresses are checked for that request)."""

    def __init__(self, backend: _PinnedBackend) -> None:
        context = httpx.create_ssl_context()  # SSL_CERT_FILE / SSL_CERT_DIR are honoured, as by httpx
        super().__init__(verify=context)
        self._pool = httpcore.ConnectionPool(ssl_context=context, max_keepalive_connections=0,
                                             network_backend=backend)


def _fetch(url: str, explicit: bool, policy: FetchPolicy, deadline: float, stop: threading.Event) -> Fetched:
    redirected_from: list[str] = []
    backend = _PinnedBackend(policy, explicit)
    try:
        # trust_env off: a proxy from the environment would reach addresses that were never checked
        with httpx.Client(headers=_HEADERS, follow_redirects=False, trust_env=False,
                          transport=_Transport(backend)) as client:
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
                            raise FetchError(f"{redact_url(url)}: more than {policy.max_redirects} redirects")
                        redirected_from.append(strip_credentials(str(response.url)))
                        request = response.next_request
                        try:
                            backend.explicit = _admit(str(request.url), policy)
                        except FetchError as e:
                            raise FetchError(f"{redact_url(str(response.url))} redirects to "
                                             f"{redact_url(str(request.url))}: {e}") from None
                        continue
                    if not response.is_success:
                        raise FetchError(f"{redact_url(str(response.url))}: HTTP {response.status_code} "
                                         f"{response.reason_phrase}".rstrip())
                    data = _read(response, policy, deadline, stop)
                finally:
                    response.close()
                return _fetched(response, data, redirected_from)
    except httpx.TimeoutException:
        raise _timed_out(url, policy) from None
    except httpx.HTTPError as e:
        raise FetchError(f"{redact_url(url)} could not be fetched: {e}") from e


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
    url = strip_credentials(str(response.url))
    metadata: dict[str, Any] = {"url": url}
    for key, header in (("content_type", "content-type"), ("etag", "etag"), ("last_modified", "last-modified")):
        if value := response.headers.get(header):
            metadata[key] = value
    if redirected_from:
        metadata["redirected_from"] = redirected_from
    return Fetched(url=url, data=data, filename=_filename(response, media_type),
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
    return FetchError(f"{redact_url(url)}: timed out after {policy.timeout_s:g} s")


def _too_large(url: httpx.URL, policy: FetchPolicy, actual: str) -> FetchError:
    return FetchError(f"{redact_url(str(url))} is larger than {_size(policy.max_bytes)}{actual}, the most a fetched "
                      "URL may be")


def _size(n: int) -> str:
    if n >= _MB:
        return f"{n / _MB:.3g} MB"
    return f"{n / 1024:.3g} KB" if n >= 1024 else f"{n} bytes"
