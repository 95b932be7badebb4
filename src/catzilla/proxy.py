"""Proxy headers: ``X-Forwarded-For/Proto/Host`` and ``Forwarded`` (RFC 7239),
believed only when the connection comes from an address of ``forwarded_allow_ips``."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = frozenset({"http", "https", "ws", "wss"})


def _strip_port(value: str) -> str:
    """``192.0.2.1:4711`` -> ``192.0.2.1``; ``[2001:db8::1]:4711`` -> ``2001:db8::1``."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class TrustedHosts:
    """``forwarded_allow_ips``: ``"*"``, or addresses and networks separated by commas
    (``"127.0.0.1,10.0.0.0/8"``); other words match literally. A Unix domain socket's
    peer has no address: it is trusted by ``"*"`` (as uvicorn does) or the word ``unix:``."""

    def __init__(self, spec: str | Iterable[str]) -> None:
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
        items = [s for s in items if s]
        self.spec = ",".join(items)
        self.everyone = "*" in items
        self.networks: list[_Network] = []
        self.literals: set[str] = set()
        for item in items:
            if item == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.literals.add(item)

    def __contains__(self, host: object) -> bool:
        if self.everyone:
            return True
        if not isinstance(host, str):
            return False
        if host in self.literals:
            return True
        try:
            ip = ipaddress.ip_address(_strip_port(host))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    @property
    def unix(self) -> bool:
        """Whether a peer without an address (a Unix domain socket's) is trusted."""
        return self.everyone or "unix:" in self.literals

    def __repr__(self) -> str:
        return f"TrustedHosts({self.spec!r})"


def _forwarded_elements(values: list[str]) -> list[dict[str, str]]:
    """``Forwarded: for=1.2.3.4;proto=https, for="[2001:db8::1]"`` -> one dict per hop."""
    hops: list[dict[str, str]] = []
    for value in values:
        for element in value.split(","):
            params: dict[str, str] = {}
            for pair in element.split(";"):
                name, sep, val = pair.partition("=")
                if sep:
                    params[name.strip().lower()] = val.strip().strip('"')
            hops.append(params)
    return hops


class ProxyView:
    """What a request behind trusted proxies looks like from outside: the
    client's address, the scheme and the host it asked for."""

    __slots__ = ("client", "host", "scheme")

    def __init__(self, client: tuple[str, int] | None, scheme: str | None, host: str | None) -> None:
        self.client = client
        self.scheme = scheme
        self.host = host


def resolve(
    trusted: TrustedHosts, peer: tuple[str, int] | None, headers: Mapping[str, str], getlist: object
) -> ProxyView | None:
    """The view through the proxy headers when ``peer`` is trusted, else None
    (``peer`` None: a Unix domain socket's client, see ``TrustedHosts.unix``).

    The client is the nearest address in the chain that is not itself a
    trusted proxy (rightmost first); if every hop is trusted, the farthest."""
    if (peer is None and not trusted.unix) or (peer is not None and peer[0] not in trusted):
        return None
    get_all = getlist if callable(getlist) else (lambda name: [headers[name]] if name in headers else [])
    forwarded = [v for v in get_all("forwarded") if v]
    fors: list[str] = []
    protos: list[str] = []
    hosts: list[str] = []
    if forwarded:
        for hop in _forwarded_elements(forwarded):
            fors.append(hop.get("for", ""))
            protos.append(hop.get("proto", ""))
            hosts.append(hop.get("host", ""))
    else:
        fors = [p.strip() for v in get_all("x-forwarded-for") for p in v.split(",")]
        protos = [p.strip() for v in get_all("x-forwarded-proto") for p in v.split(",")]
        hosts = [p.strip() for v in get_all("x-forwarded-host") for p in v.split(",")]
    client: tuple[str, int] | None = None
    index = None
    for i in range(len(fors) - 1, -1, -1):
        host = _strip_port(fors[i])
        if not host:
            continue
        index = i
        if host not in trusted:
            break
    if index is not None:
        client = (_strip_port(fors[index]), 0)

    def pick(values: list[str]) -> str | None:
        if not values:
            return None
        if index is not None and len(values) == len(fors) and values[index]:
            return values[index]
        return next((v for v in values if v), None)

    scheme = pick(protos)
    scheme = scheme.lower() if scheme and scheme.lower() in SCHEMES else None
    return ProxyView(client, scheme, pick(hosts))
