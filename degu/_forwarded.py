"""Who the client is behind a load balancer: the PROXY protocol and forwarding headers.

Pure functions, bytes or text in and values out, no IO (the server reads
and calls them; doc/degu.server.rst, 'Behind a proxy', says how):

* ``proxy_header_end()`` and ``parse_proxy_header()``: the PROXY protocol
  header, version 1 (text) or 2 (binary), that HAProxy's ``send-proxy`` and
  ``send-proxy-v2`` put before anything else on a connection;
* ``TrustedProxies``: the ``forwarded_allow_ips`` server option, parsed;
* ``forwarded_origin()``: the client address and scheme of a request that
  came through trusted proxies, from ``X-Forwarded-For`` and
  ``X-Forwarded-Proto``, else ``Forwarded`` (RFC 7239).

An address here is ``(host, port)``: *host* an IP address in its usual text
form, *port* an ``int`` (0 when the header does not say).
"""

from __future__ import annotations

import functools
import ipaddress
import re

__all__ = (
    'MAX_PROXY_V1_LEN',
    'MAX_PROXY_V2_LEN',
    'TrustedProxies',
    'forwarded_origin',
    'parse_forwarded_node',
    'parse_proxy_header',
    'proxy_header_end',
)

# --------------------------------------------------------------------------
# The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2)
#
# Version 1, one line of text:
#
#   "PROXY" SP ( "TCP4" / "TCP6" ) SP src SP dst SP sport SP dport CRLF
#   "PROXY" SP "UNKNOWN" *( any byte but CR ) CRLF
#
# at most 107 bytes with the CRLF.  Version 2, binary:
#
#   signature (12 bytes) | version << 4 | command (1) | family << 4 | transport (1)
#   | length (2, big-endian) | length bytes: addresses, then TLVs
#
# with version 2, command 0 (LOCAL: the proxy's own connection, a health
# check) or 1 (PROXY), family 0 (none given), 1 (INET: 12 bytes of addresses),
# 2 (INET6: 36 bytes) or 3 (UNIX: 216 bytes), transport 0 (none given), 1
# (STREAM) or 2 (DGRAM, refused: HTTP needs a stream).

PROXY_V1 = b'PROXY '
PROXY_V2 = b'\r\n\r\n\x00\r\nQUIT\n'
MAX_PROXY_V1_LEN = 107  # bytes, the CRLF included: the limit the protocol sets
# The protocol lets a version 2 header reach 16 + 65535 bytes, mostly TLVs
# (which we skip).  HAProxy's own TLVs (SSL details, a unique ID, a
# VPC endpoint name) take a few hundred bytes; 4 KiB leaves room and bounds
# what a peer can make the accept loop hold before anything is known of it.
MAX_PROXY_V2_LEN = 4096  # bytes, the 16-byte fixed part included
_V2_FIXED = 16  # bytes: signature, version and command, family, length
_V2_ADDRESS_LEN = {0: 0, 1: 12, 2: 36, 3: 216}  # family -> bytes of addresses
_PORT_RE = re.compile(r'0|[1-9][0-9]{0,4}')
_V1_FAMILIES = {'TCP4': ipaddress.IPv4Address, 'TCP6': ipaddress.IPv6Address}


def proxy_header_end(data: bytes) -> int | None:
    """The length of the PROXY header *data* starts with, or ``None`` if more bytes are needed.

    *data* holds only bytes of the header so far (never more than this
    returns), so that the caller reads no byte past it: a TLS handshake
    follows it on an ``SSLServer``.  Raises ``ValueError`` when *data* cannot
    be the start of a header, or the header would be over its limit.

    >>> proxy_header_end(b'PROXY UNKNOWN\\r\\nGET')
    15
    >>> proxy_header_end(b'PROXY TCP4 1.2.3.4') is None
    True
    """
    if data[:6] == PROXY_V1[: len(data)]:
        end = data.find(b'\r\n', 0, MAX_PROXY_V1_LEN)
        if end >= 0:
            return end + 2
        if len(data) >= MAX_PROXY_V1_LEN:
            raise ValueError(f'PROXY v1 header longer than {MAX_PROXY_V1_LEN} bytes')
        return None
    if data[:12] == PROXY_V2[: len(data)]:
        if len(data) < _V2_FIXED:
            return None
        end = _V2_FIXED + int.from_bytes(data[14:16], 'big')
        if end > MAX_PROXY_V2_LEN:
            raise ValueError(f'need a PROXY v2 header <= {MAX_PROXY_V2_LEN} bytes; got {end}')
        return end
    raise ValueError(f'no PROXY protocol header: {bytes(data[:16])!r}')


def parse_proxy_header(data: bytes) -> tuple[str, int] | None:
    """The source address of a whole PROXY *header* (version 1 or 2), or ``None``.

    ``None`` means the connection keeps its socket peer: version 1
    ``UNKNOWN``, version 2 ``LOCAL`` (a health check by the proxy itself),
    no address family (0) or ``UNIX`` addresses.  Raises ``ValueError`` for
    a malformed header.

    >>> parse_proxy_header(b'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\\r\\n')
    ('192.0.2.1', 56324)
    """
    if proxy_header_end(data) != len(data):
        raise ValueError(f'not one whole PROXY header: {bytes(data[:16])!r}...')
    if data.startswith(PROXY_V1):
        return _parse_proxy_v1(data)
    return _parse_proxy_v2(data)


def _parse_proxy_v1(data):
    line = bytes(data[6:-2])
    if not line.isascii() or b'\r' in line or b'\n' in line:
        raise ValueError(f'bad PROXY v1 header: {bytes(data[:48])!r}')
    if line == b'UNKNOWN' or line.startswith(b'UNKNOWN '):
        return None
    fields = line.decode('ascii').split(' ')
    if len(fields) != 5 or fields[0] not in _V1_FAMILIES:
        raise ValueError(f'bad PROXY v1 header: {bytes(data[:48])!r}')
    (family, src, dst, sport, dport) = fields
    kind = _V1_FAMILIES[family]
    try:
        (source, _) = (kind(src), kind(dst))
    except ValueError:
        raise ValueError(f'bad PROXY v1 address: {bytes(data[:48])!r}') from None
    ports = []
    for port in (sport, dport):
        if not _PORT_RE.fullmatch(port) or int(port) > 65535:
            raise ValueError(f'bad PROXY v1 port: {port[:8]!r}')
        ports.append(int(port))
    return (str(source), ports[0])


def _parse_proxy_v2(data):
    (version, command) = divmod(data[12], 16)
    (family, transport) = divmod(data[13], 16)
    if version != 2:
        raise ValueError(f'bad PROXY v2 version: {version}')
    if command > 1:
        raise ValueError(f'bad PROXY v2 command: {command}')
    if family not in _V2_ADDRESS_LEN:
        raise ValueError(f'bad PROXY v2 address family: {family}')
    if transport > 2:
        raise ValueError(f'bad PROXY v2 transport: {transport}')
    if command == 0:  # LOCAL: addresses and TLVs are to be ignored
        return None
    if transport == 2:
        raise ValueError('PROXY v2 transport is DGRAM, not a stream')
    need = _V2_ADDRESS_LEN[family]
    if len(data) - _V2_FIXED < need:
        raise ValueError(f'PROXY v2 addresses need {need} bytes; got {len(data) - _V2_FIXED}')
    if family == 1:
        host = ipaddress.IPv4Address(bytes(data[16:20]))
        port = int.from_bytes(data[24:26], 'big')
    elif family == 2:
        host = ipaddress.IPv6Address(bytes(data[16:32]))
        port = int.from_bytes(data[48:50], 'big')
    else:  # no address family, or UNIX: no IP address to give; the socket peer stays
        return None
    return (str(host), port)  # the TLVs after the addresses are skipped


# --------------------------------------------------------------------------
# Trusted proxies


MAX_SEEN = 4096  # addresses whose trust is remembered, and forwarding nodes parsed


class TrustedProxies:
    """The ``forwarded_allow_ips`` server option: whose forwarding headers are believed.

    *allow* is a list or tuple of entries, or a string of entries separated
    by commas: an IP address, a network (``10.0.0.0/8``), ``unix`` (peers
    on an AF_UNIX socket) or ``*`` (anyone, AF_UNIX peers included).

    >>> trusted = TrustedProxies('127.0.0.1, 10.0.0.0/8')
    >>> (('10.1.2.3', 80) in trusted, ('192.0.2.1', 80) in trusted, '' in trusted)
    (True, False, False)
    """

    __slots__ = ('entries', 'anyone', 'unix', 'networks', '_seen')

    def __init__(self, allow: str | list[str] | tuple[str, ...]) -> None:
        if type(allow) is str:
            entries = [e.strip() for e in allow.split(',') if e.strip()]
        elif type(allow) in (list, tuple):
            entries = list(allow)
        else:
            raise TypeError(f'forwarded_allow_ips: need a str, list or tuple; got a '
                            f'{type(allow)!r}: {allow!r}')
        networks = []
        for entry in entries:
            if type(entry) is not str:
                raise TypeError(f'forwarded_allow_ips: need str entries; got {entry!r}')
            if entry not in ('*', 'unix'):
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f'forwarded_allow_ips: bad entry: {entry[:64]!r} (need an '
                                     "IP address, a network, 'unix' or '*')") from None
        self.entries = tuple(entries)
        self.anyone = '*' in entries
        self.unix = self.anyone or 'unix' in entries
        self.networks = tuple(networks)
        self._seen: dict[str, bool] = {}  # host -> trusted, see trusts()

    def __repr__(self) -> str:
        return f'TrustedProxies({list(self.entries)!r})'

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __contains__(self, address: object) -> bool:
        """Whether *address*, a ``(host, port...)`` tuple or an AF_UNIX address, is trusted."""
        if type(address) is not tuple:
            return self.unix
        return self.trusts(address[0])

    def trusts(self, host: str) -> bool:
        """Whether the IP address *host* (text) is trusted."""
        if self.anyone:
            return True
        # The same few proxies and clients come again and again, and parsing an
        # address with ipaddress costs 1-2 us: the answers are kept, at most
        # MAX_SEEN of them (then forgotten at once: a peer sending random
        # addresses gets no more than the cost without the cache).
        seen = self._seen.get(host)
        if seen is None:
            if len(self._seen) >= MAX_SEEN:
                self._seen.clear()
            seen = self._seen[host] = self._trusts(host)
        return seen

    def _trusts(self, host):
        try:
            ip = ipaddress.ip_address(host.split('%', 1)[0])  # no IPv6 zone
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:  # a dual-stack socket's IPv4 peer
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


# --------------------------------------------------------------------------
# Forwarding headers
#
# RFC 7239 section 4:
#
#   Forwarded         = 1#forwarded-element
#   forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
#   forwarded-pair    = token "=" value
#   value             = token / quoted-string
#
# and section 6, the value of "for":
#
#   node     = nodename [ ":" node-port ]
#   nodename = IPv4address / "[" IPv6address "]" / "unknown" / obfnode
#
# X-Forwarded-For has no RFC: a comma-separated list of addresses, each
# proxy appending its peer's.  Proxies write IPv6 addresses bare (nginx) or
# in brackets, some with a port; all of these are read.

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PAIR_RE = re.compile(rf'[ \t]*({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")[ \t]*')
_SCHEMES = ('http', 'https')


@functools.lru_cache(maxsize=MAX_SEEN)  # as TrustedProxies.trusts(): a value is parsed once
def parse_forwarded_node(text: str) -> tuple[str, int]:
    """``(host, port)`` of one address of X-Forwarded-For or of ``for=`` (port 0 when absent).

    Raises ``ValueError`` for anything but an IP address, with an optional
    port (``unknown`` and obfuscated identifiers included: no address).

    >>> parse_forwarded_node('[2001:db8::1]:4711')
    ('2001:db8::1', 4711)
    >>> parse_forwarded_node('192.0.2.43')
    ('192.0.2.43', 0)
    """
    port = '0'
    if text.startswith('['):
        (host, bracket, rest) = text[1:].partition(']')
        if not bracket:
            raise ValueError(f'bad node: {text[:64]!r}')
        if rest:
            if rest[0] != ':':
                raise ValueError(f'bad node: {text[:64]!r}')
            port = rest[1:]
        ip = ipaddress.IPv6Address(host)
    elif text.count(':') == 1:  # IPv4 with a port
        (host, _, port) = text.partition(':')
        ip = ipaddress.IPv4Address(host)
    else:
        ip = ipaddress.ip_address(text)
    if not _PORT_RE.fullmatch(port) or int(port) > 65535:
        raise ValueError(f'bad node port: {text[:64]!r}')
    return (str(ip), int(port))


def _forwarded_elements(value):
    """The elements of a Forwarded *value*, each a dict of its pairs (names lower-cased)."""
    elements = []
    element = {}
    pos = 0
    end = len(value)
    while True:
        match = _PAIR_RE.match(value, pos)
        if match is None:
            raise ValueError(f'bad Forwarded value: {value[:64]!r}')
        (name, text) = match.groups()
        if text.startswith('"'):
            text = re.sub(r'\\(.)', r'\1', text[1:-1])
        name = name.lower()
        if name in element:
            raise ValueError(f'Forwarded {name!r} twice in one element: {value[:64]!r}')
        element[name] = text
        pos = match.end()
        if pos == end:
            elements.append(element)
            return elements
        if value[pos] == ',':
            elements.append(element)
            element = {}
        elif value[pos] != ';':
            raise ValueError(f'bad Forwarded value: {value[:64]!r}')
        pos += 1


def forwarded_origin(
    headers: dict[str, str], trusted: TrustedProxies, client: object, scheme: str
) -> tuple[object, str]:
    """``(client, scheme)`` of a request received from *client*, a trusted proxy.

    The client is the right-most address of ``X-Forwarded-For`` (or of the
    ``for=`` parameters of ``Forwarded``, read only without an
    ``X-Forwarded-For``) that is not itself a trusted proxy: each proxy
    appends the address of its own peer, so everything left of the first
    untrusted one may have been written by the client itself.  When every
    address is trusted, the left-most one is the client.  A malformed
    value, ``unknown`` or an obfuscated identifier met on the way from the
    right leaves *client* as it is.  The scheme comes from
    ``X-Forwarded-Proto`` (a single ``http`` or ``https``, any case), else
    from the ``proto=`` of the ``Forwarded`` element chosen; anything else
    leaves *scheme* as it is.  Never raises ``ValueError``.

    >>> trusted = TrustedProxies(['127.0.0.1'])
    >>> headers = {'x-forwarded-for': '203.0.113.9, 192.0.2.7', 'x-forwarded-proto': 'https'}
    >>> forwarded_origin(headers, trusted, ('127.0.0.1', 40000), 'http')
    (('192.0.2.7', 0), 'https')
    """
    found = None
    xff = headers.get('x-forwarded-for')
    if xff is not None:
        found = _rightmost_untrusted((n.strip() for n in reversed(xff.split(','))), trusted)
        proto = headers.get('x-forwarded-proto')
        if proto is not None:
            proto = proto.strip().lower()
            if proto in _SCHEMES:
                scheme = proto
    elif 'forwarded' in headers:
        try:
            elements = _forwarded_elements(headers['forwarded'])
        except ValueError:
            return (client, scheme)
        index = _rightmost_untrusted((e.get('for', '') for e in reversed(elements)), trusted)
        if index is not None:
            (found, element) = (index, elements[len(elements) - 1 - index[2]])
            proto = element.get('proto', '').lower()
            if proto in _SCHEMES:
                scheme = proto
    elif 'x-forwarded-proto' in headers:
        proto = headers['x-forwarded-proto'].strip().lower()
        if proto in _SCHEMES:
            scheme = proto
    if found is not None:
        client = found[:2]
    return (client, scheme)


def _rightmost_untrusted(nodes, trusted):
    """``(host, port, index)`` of the client among *nodes* (right to left), or ``None``."""
    last = None
    for (index, text) in enumerate(nodes):
        try:
            (host, port) = parse_forwarded_node(text)
        except ValueError:
            return None
        last = (host, port, index)
        if not trusted.trusts(host):
            return last
    return last
