"""callback_url: HTTPS, <= 2048 chars, never an internal host in any spelling; media URLs: http(s)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kling_provider.models import (
    CustomElementRequest,
    ImageToVideoRequest,
    RequestValidationError,
    TextToVideoRequest,
    check_callback_url,
)
from kling_provider.models.urls import parse_ipv4

REJECTED = [
    # loopback, every notation a WHATWG/inet_aton parser accepts
    "https://127.0.0.1/cb",
    "https://127.0.0.1./cb",
    "https://127.0.0.1:8443/cb",
    "https://2130706433/cb",
    "https://0177.0.0.1/cb",
    "https://0177.0000.0000.0001/cb",
    "https://0x7f.0.0.1/cb",
    "https://0X7F.0.0.1/cb",
    "https://0x7f000001/cb",
    "https://017700000001/cb",
    "https://127.1/cb",
    "https://127.0.1/cb",
    "https://127.000.000.001/cb",
    "https://127.255.255.254/cb",
    "https://0/cb",
    "https://0.0.0.0/cb",
    "https://0x0/cb",
    # IPv6 and IPv4 embedded in IPv6
    "https://[::1]/cb",
    "https://[::1]:8443/cb",
    "https://[0:0:0:0:0:0:0:1]/cb",
    "https://[::]/cb",
    "https://[::ffff:127.0.0.1]/cb",
    "https://[::FFFF:7f00:1]/cb",
    "https://[0:0:0:0:0:ffff:127.0.0.1]/cb",
    "https://[::ffff:10.0.0.1]/cb",
    "https://[::ffff:169.254.169.254]/cb",
    "https://[::127.0.0.1]/cb",
    "https://[64:ff9b::7f00:1]/cb",
    "https://[64:ff9b::a9fe:a9fe]/cb",
    "https://[2002:7f00:1::]/cb",
    "https://[2002:c0a8:101::1]/cb",
    "https://[fe80::1%25eth0]/cb",
    "https://[fe80::1]/cb",
    "https://[fc00::1]/cb",
    "https://[fd12:3456::1]/cb",
    "https://[ff02::1]/cb",
    "https://[2001:db8::1]/cb",
    # private, link-local, shared, multicast, reserved, documentation
    "https://10.0.0.1/cb",
    "https://10.1/cb",
    "https://167772161/cb",
    "https://172.16.0.1/cb",
    "https://172.31.255.255/cb",
    "https://192.168.1.1/cb",
    "https://0xc0.0xa8.1.1/cb",
    "https://0300.0250.1.1/cb",
    "https://192.168.257/cb",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/cb",
    "https://224.0.0.1/cb",
    "https://239.255.255.250/cb",
    "https://240.0.0.1/cb",
    "https://255.255.255.255/cb",
    "https://192.0.2.1/cb",
    "https://198.18.0.1/cb",
    # localhost names
    "https://localhost/cb",
    "https://LOCALHOST/cb",
    "https://localhost./cb",
    "https://localhost:443/cb",
    "https://api.localhost/cb",
    "https://a.b.LocalHost./cb",
    "https://localhost.localdomain/cb",
    # parser-confusion and malformed hosts
    "https://user:pw@example.com/cb",
    "https://example.com@127.0.0.1/cb",
    "https://example.com\\@127.0.0.1/cb",
    "https://127.0.0.1\\.example.com/cb",
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/cb",
    "https://127\u30020\u30020\u30021/cb",
    "https://127.0.0.1%2e/cb",
    "https://127.0.0.1../cb",
    "https://.example.com/cb",
    "https://exa mple.com/cb",
    "https://example.com/c b",
    "https://example.com/\tcb",
    "https://example.com/\ncb",
    " https://example.com/cb",
    "https:///cb",
    "https://[::1/cb",
    "https://[::1]x/cb",
    "https://[127.0.0.1]/cb",
    "https://::1/cb",
    "https://999.1.1.1/cb",
    "https://1.2.3.4.5/cb",
    "https://08.8.8.8/cb",
    "https://1.2.3.0x/cb",
    "https://example.123/cb",
    "https://foo.0x10/cb",
    "https://example.com:99999/cb",
    "https://example.com:port/cb",
    "https://-bad-.example.com/cb",
    "https://" + "a" * 64 + ".example.com/cb",
    # public addresses in a spelling other parsers may read differently
    "https://134744072/cb",
    "https://0x08.0x08.0x08.0x08/cb",
    "https://8.8.2056/cb",
    "https://010.8.8.8/cb",
    "https://8.8.8.8./cb",
    # scheme and shape
    "http://example.com/cb",
    "ftp://example.com/cb",
    "https:example.com/cb",
    "//example.com/cb",
    "example.com/cb",
    "",
    "https://example.com/" + "x" * 2030,
]

ACCEPTED = [
    "https://example.com/cb",
    "https://EXAMPLE.com/cb",
    "HTTPS://example.com/cb",
    "https://example.com./cb",
    "https://hooks.example.co.uk:8443/a/b?c=d&e=%20#frag",
    "https://8.8.8.8/cb",
    "https://1.1.1.1:443/cb",
    "https://[2606:4700:4700::1111]/cb",
    "https://[2606:4700:4700::1111]:8443/cb",
    "https://xn--bcher-kva.example/cb",
    "https://my_host.example.com/cb",
    "https://1e100.net/cb",
    "https://10.example.com/cb",
    "https://localhost.example.com/cb",
    "https://example.com/" + "x" * (2048 - len("https://example.com/")),
]


@pytest.mark.parametrize("url", REJECTED)
def test_rejected_callback_urls(url: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        TextToVideoRequest.build(prompt="x", callback_url=url)
    assert info.value.param == "callback_url"
    assert [p.path for p in info.value.problems] == ["callback_url"]


@pytest.mark.parametrize("url", ACCEPTED)
def test_accepted_callback_urls(url: str) -> None:
    request = TextToVideoRequest.build(prompt="x", callback_url=url)
    assert request.to_body()["callback_url"] == url  # sent exactly as given


@pytest.mark.parametrize("model", [ImageToVideoRequest, CustomElementRequest])
def test_every_model_checks_the_callback(model: type) -> None:
    kwargs: dict[str, object] = (
        {"image_start": "https://example.com/a.png"}
        if model is ImageToVideoRequest
        else {"element_name": "a", "element_description": "b", "refer_video": "https://example.com/a.mp4"}
    )
    with pytest.raises(RequestValidationError, match="callback_url: must not point at an internal address"):
        model.build(**kwargs, callback_url="https://0x7f.1/cb")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("4294967295", "255.255.255.255"),
    ],
)
def test_ipv4_decoding_matches_browsers(host: str, address: str) -> None:
    assert parse_ipv4(host.split(".")) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("host", ["4294967296", "256.0.0.1", "1.2.3.4.5", "08", "1.2.65536", "0xg", ""])
def test_ipv4_decoding_refuses_invalid(host: str) -> None:
    assert parse_ipv4(host.split(".")) is None


# -- generated notations ---------------------------------------------------------------------

INTERNAL_NETWORKS = [
    ipaddress.IPv4Network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "100.64.0.0/10",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "192.0.2.0/24",
    )
]


@st.composite
def internal_ipv4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    network = draw(st.sampled_from(INTERNAL_NETWORKS))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return network[offset]


def _number(draw: st.DrawFn, value: int) -> str:
    style = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
    if style == "dec":
        return str(value)
    if style == "oct":
        return "0" + format(value, "o")
    return ("0x" if style == "hex" else "0X") + format(value, "x" if draw(st.booleans()) else "X")


@st.composite
def ipv4_spelling(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """``address`` as a WHATWG parser would read it: 1 to 4 parts in mixed bases, maybe a trailing dot."""
    octets = list(address.packed)
    parts = draw(st.integers(1, 4))
    head = octets[: parts - 1]
    tail = int.from_bytes(bytes(octets[parts - 1 :]), "big")
    host = ".".join([_number(draw, o) for o in head] + [_number(draw, tail)])
    return host + ("." if draw(st.booleans()) else "")


@st.composite
def internal_host(draw: st.DrawFn) -> tuple[str, ipaddress.IPv4Address]:
    address = draw(internal_ipv4())
    form = draw(st.sampled_from(["ipv4", "mapped-dotted", "mapped-hex", "6to4", "nat64"]))
    hi, lo = int(address) >> 16, int(address) & 0xFFFF
    if form == "ipv4":
        host = draw(ipv4_spelling(address))
    elif form == "mapped-dotted":
        host = f"[::ffff:{address}]"
    elif form == "mapped-hex":
        host = f"[::ffff:{hi:x}:{lo:x}]"
    elif form == "6to4":
        host = f"[2002:{hi:x}:{lo:x}::1]"
    else:
        host = f"[64:ff9b::{hi:x}:{lo:x}]"
    return host, address


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(internal_host(), st.sampled_from(["", ":443", ":8443"]), st.sampled_from(["/", "/cb?x=1", ""]))
def test_internal_addresses_are_rejected_in_any_notation(
    host_and_address: tuple[str, ipaddress.IPv4Address], port: str, path: str
) -> None:
    host, address = host_and_address
    if not host.startswith("["):
        assert parse_ipv4(host.rstrip(".").split(".")) == address  # the spelling really means address
    with pytest.raises(RequestValidationError) as info:
        TextToVideoRequest.build(prompt="x", callback_url=f"https://{host}{port}{path}")
    assert info.value.param == "callback_url"


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address).filter(lambda a: a.is_global and not a.is_multicast), st.data()
)
def test_public_addresses_only_in_dotted_decimal(address: ipaddress.IPv4Address, data: st.DataObject) -> None:
    assert check_callback_url(f"https://{address}/cb") == f"https://{address}/cb"
    spelling = data.draw(ipv4_spelling(address))
    if spelling == str(address):
        return
    with pytest.raises(ValueError, match="dotted-decimal"):
        check_callback_url(f"https://{spelling}/cb")


# -- media URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://files-api.evolink.ai/files/a.png",
        "http://example.com/a.jpg",
        "https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=abc&X-Amz-Expires=3600",
        "https://example.com/%E5%9B%BE.png",
    ],
)
def test_media_urls_accepted(url: str) -> None:
    assert ImageToVideoRequest.build(image_start=url).image_start == url


@pytest.mark.parametrize(
    "url",
    [
        "/tmp/a.png",
        "a.png",
        "file:///tmp/a.png",
        "s3://bucket/a.png",
        "data:image/png;base64,AAAA",
        "https://",
        "https:///a.png",
        "https://example.com/a b.png",
        "https://example.com:99999/a.png",
        "https://example.com/" + "x" * 9000,
        b"https://example.com/a.png",
    ],
)
def test_media_urls_rejected(url: object) -> None:
    with pytest.raises(RequestValidationError) as info:
        ImageToVideoRequest.build(image_start=url)
    assert info.value.param == "image_start"
