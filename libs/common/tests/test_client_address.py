"""The client address per the contract: X-Forwarded-For only through trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from platform_common.client_address import client_address

INGRESS = [ipaddress.ip_network("10.0.0.0/8")]


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("192.0.2.7", ["203.0.113.9"], []) == "192.0.2.7"


def test_an_untrusted_peer_cannot_speak_for_anyone() -> None:
    assert client_address("192.0.2.7", ["203.0.113.9"], INGRESS) == "192.0.2.7"


def test_the_right_most_untrusted_hop_is_the_client() -> None:
    # The client put 198.51.100.1 in front itself; the ingress appended what it saw.
    header = ["198.51.100.1, 203.0.113.9, 10.1.2.3"]
    assert client_address("10.0.0.5", header, INGRESS) == "203.0.113.9"


def test_several_headers_read_as_one_list() -> None:
    assert client_address("10.0.0.5", ["198.51.100.1", "203.0.113.9"], INGRESS) == "203.0.113.9"


@pytest.mark.parametrize(
    "forged", ["x" * 70, "203.0.113.9; drop table", "unknown", "", "300.1.1.1", "[::1]"]
)
def test_an_entry_that_is_not_an_address_ends_the_walk_at_the_last_good_hop(forged: str) -> None:
    assert client_address("10.0.0.5", [forged], INGRESS) == "10.0.0.5"
    assert client_address("10.0.0.5", [f"{forged}, 10.9.9.9"], INGRESS) == "10.9.9.9"


def test_all_hops_trusted_gives_the_left_most() -> None:
    assert client_address("10.0.0.5", ["10.7.7.7, 10.8.8.8"], INGRESS) == "10.7.7.7"


def test_ipv6_and_a_missing_peer() -> None:
    six = [ipaddress.ip_network("fd00::/8")]
    assert client_address("fd00::1", ["2001:db8::5"], six) == "2001:db8::5"
    assert client_address(None, ["2001:db8::5"], six) is None
