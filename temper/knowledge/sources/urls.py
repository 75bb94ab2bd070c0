"""Pieces of URL safety with no I/O: credentials kept out of what is shown or indexed, paths read the way the
most lenient server would read them, and the kinds of address a fetch may not reach unless listed."""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known prefix: the IPv4 address is the last 32 bits
_AUTHORITY_END = re.compile(r"[/?#]")  # where httpx ends a URL's authority (a backslash does not)


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """(what precedes the user info, the user info, what follows its '@'), or None without user info. The
    user info runs to the authority's last '@', so whatever a parser takes for it is covered."""
    head, sep, rest = url.partition("//")
    if not sep:
        return None
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if not at:
        return None
    return head + sep, userinfo, rest[len(userinfo) + 1:]


def redact_url(url: str) -> str:
    """``url`` fit to show: its password replaced by ``***`` (a user name alone, often a token, too)."""
    parts = _userinfo(url)
    if parts is None:
        return url
    head, userinfo, tail = parts
    user, colon, _ = userinfo.partition(":")
    return f"{head}{user + ':***' if colon else '***'}@{tail}"


def strip_credentials(url: str) -> str:
    """``url`` without its user name and password: the address of the page it names."""
    parts = _userinfo(url)
    return url if parts is None else parts[0] + parts[2]


def normal_path(raw_path: str) -> str:
    """A URL path as the most lenient server reads it: percent-escapes decoded (repeatedly, for double
    encoding), backslashes as slashes, ``;parameters`` dropped, empty and ``.`` segments skipped and ``..``
    applied. A path under a prefix here is under it for any server."""
    path = raw_path
    while (decoded := unquote(path)) != path:
        path = decoded
    segments: list[str] = []
    for segment in path.replace("\\", "/").split("/"):
        segment = segment.split(";", 1)[0]
        if segment == "..":
            segments = segments[:-1]
        elif segment not in ("", "."):
            segments.append(segment)
    return "/" + "/".join(segments)


def a_kind(kind: str) -> str:
    """"a private", "an unspecified": a kind with its article."""
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def special_kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` an address a fetch may not reach unless listed ("loopback", "private", ...); None for
    a public unicast address. IPv6 forms that carry an IPv4 address (6to4, NAT64) are judged by it too."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "mapped IPv4"
        if ip in _NAT64:  # the translator reaches the embedded address
            return special_kind(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None and (kind := special_kind(ip.sixtofour)):
            return kind
    for kind, test in (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
                       ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                       ("shared (CGNAT)", ip in _CGNAT), ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if test:
            return kind
    return None if ip.is_global else "reserved"
