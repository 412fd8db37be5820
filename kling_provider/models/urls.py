"""URL rules: the callback URL EvoLink will POST to, and the media URLs it downloads.

EvoLink refuses callback URLs that are not HTTPS or that point at internal addresses. We check
the same client-side, and stricter than a naive ``ipaddress.ip_address(host)``: an address can
be spelled ``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``, ``[::ffff:127.0.0.1]`` or with
a trailing dot, and different URL parsers disagree on some of those. So every host that a
WHATWG parser would read as an IPv4 address is decoded the way browsers do, rejected when it is
internal, and also rejected when it is not in plain dotted-decimal form (so no parser can read
it differently). Host names are not resolved: DNS names pointing at internal addresses are
EvoLink's to refuse.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

from kling_provider.models.errors import fail
from kling_provider.models.untrusted import exact_str, show

MAX_CALLBACK_URL_CHARS = 2048
#: Not a documented vendor limit: a sanity bound so a runaway value fails here, not upstream.
MAX_MEDIA_URL_CHARS = 8192

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _url_string(value: Any, max_chars: int, what: str) -> str:
    if not isinstance(value, str):
        fail(f"must be {what} string (got {show(value)})")
    url = exact_str(value)
    if len(url) > max_chars:
        fail(f"must be at most {max_chars} characters (got {len(url)})")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        fail(f"must not contain spaces or control characters (got {show(url)})")
    if "\\" in url:
        fail(f"must not contain backslashes (got {show(url)})")
    return url


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError:
        fail(f"is not a valid URL (got {show(url)})")
    return parts


def check_media_url(value: Any) -> str:
    """An http(s) URL EvoLink can download; local files must be uploaded first."""
    url = _url_string(value, MAX_MEDIA_URL_CHARS, "an http(s) URL")
    parts = _split(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        fail(f"must be an http(s) URL (got {show(url)}); upload local files with KlingHook first")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        fail("contains characters that cannot be sent as UTF-8 (unpaired surrogates)")
    return url


def check_callback_url(value: Any) -> str:
    """An HTTPS URL on a public host, <= 2048 characters, as EvoLink requires."""
    url = _url_string(value, MAX_CALLBACK_URL_CHARS, "an https:// URL")
    if not url.isascii():
        fail("must be plain ASCII (percent-encode the path, write the host in punycode)")
    parts = _split(url)
    if parts.scheme.lower() != "https":
        fail(f"must use https:// (got {show(parts.scheme + ':' if parts.scheme else url)})")
    if "@" in parts.netloc:
        fail("must not contain user:password@ credentials")
    host, bracketed = _raw_host(parts.netloc)
    reason = host_problem(host, bracketed)
    if reason:
        fail(reason)
    return url


def _raw_host(netloc: str) -> tuple[str, bool]:
    """The host as written (``urlsplit().hostname`` drops what follows ``]`` and lowercases)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        rest = netloc[end + 1 :] if end != -1 else ""
        if end == -1 or (rest and not rest.startswith(":")):
            fail(f"has a malformed [IPv6] host (got {show(netloc)})")
        return netloc[1:end], True
    return netloc.rsplit(":", 1)[0] if ":" in netloc else netloc, False


def host_problem(host: str, bracketed: bool = False) -> str | None:
    """Why EvoLink would refuse ``host`` as a callback target, or ``None`` when it is public."""
    if bracketed:
        try:
            address = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return f"has a malformed [IPv6] host (got {show(host)})"
        return _internal(address, host)
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]  # one trailing dot is the DNS root; more is an empty label
    if not name:
        return "must include a host name"
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return f"must not point at localhost (got {show(host)})"
    labels = name.split(".")
    if _ends_in_number(labels[-1]):
        address4 = parse_ipv4(labels)
        if address4 is None:
            return f"has a host that looks like an IPv4 address but is not a valid one (got {show(host)})"
        problem = _internal(address4, host)
        if problem:
            return problem
        if str(address4) != host:
            return f"must write an IPv4 host in dotted-decimal form: {address4} (got {show(host)})"
        return None
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return f"has an invalid host name (got {show(host)})"
    return None


def _ends_in_number(label: str) -> bool:
    """WHATWG's "ends in a number": such a host is parsed as IPv4 or rejected."""
    if label.isascii() and label.isdigit():
        return True
    return label[:2] in ("0x", "0X") and all(c in "0123456789abcdefABCDEF" for c in label[2:])


def _ipv4_part(part: str) -> int | None:
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
        if not digits:
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits or len(digits) > 12:  # longer can only overflow; also keeps int() cheap
        return None
    try:
        return int(digits, base) if digits.isascii() and digits.isalnum() else None
    except ValueError:
        return None


def parse_ipv4(labels: list[str]) -> ipaddress.IPv4Address | None:
    """Decode an IPv4 host the way browsers do: 1 to 4 parts, decimal, octal (0...) or hex (0x...),
    the last part filling the remaining bytes (``127.1`` is ``127.0.0.1``)."""
    if not 1 <= len(labels) <= 4:
        return None
    numbers = [_ipv4_part(label) for label in labels]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    *head, last = values
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(values)):
        return None
    total = last
    for i, n in enumerate(head):
        total += n << (8 * (3 - i))
    return ipaddress.IPv4Address(total)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one tunnels to (mapped, 6to4, NAT64, IPv4-compatible)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _internal(address: IPAddress, written: str) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and _internal(inner, written):
            return f"must not point at an internal address ({show(written)} is {inner})"
    for kind, flag in (
        ("a loopback", address.is_loopback),
        ("an unspecified", address.is_unspecified),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        ("a non-public", not address.is_global),
    ):
        if flag:
            canonical = "" if str(address) == written else f" = {address}"
            return f"must not point at an internal address ({show(written)}{canonical} is {kind} address)"
    return None
