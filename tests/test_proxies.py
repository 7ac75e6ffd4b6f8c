"""Behind a proxy: the PROXY protocol, trusted forwarding headers, root_path.

Parsers table-driven over exact bytes; then live servers on loopback and
AF_UNIX, driven by hand-written bytes.
"""

import ipaddress
import json
import os
import socket
import struct
import time

import helpers
import pytest

from degu._forwarded import (
    MAX_PROXY_V1_LEN,
    MAX_PROXY_V2_LEN,
    TrustedProxies,
    forwarded_origin,
    parse_forwarded_node,
    parse_proxy_header,
    proxy_header_end,
)
from degu.applib import ProxyApp
from degu.base import Request, Session
from degu.client import Client, build_client_sslctx
from degu.misc import TempPKI, TempServer, TempSSLServer
from degu.rgi import Validator
from degu.server import Server
from degu.wsgi import WSGIApp

DEADLINE = 5.0  # seconds: every socket wait in these tests
SIG2 = b'\r\n\r\n\x00\r\nQUIT\n'


def v2(command=1, family=1, transport=1, addresses=None, tlvs=b'', version=2, length=None):
    """A PROXY v2 header, exact bytes."""
    if addresses is None:
        addresses = {
            0: b'',
            1: bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack('>HH', 56324, 443),
            2: ipaddress.IPv6Address('2001:db8::1').packed
            + ipaddress.IPv6Address('2001:db8::2').packed + struct.pack('>HH', 4711, 443),
            3: b'/tmp/a'.ljust(108, b'\0') + b'/tmp/b'.ljust(108, b'\0'),
        }[family]
    payload = addresses + tlvs
    if length is None:
        length = len(payload)
    head = bytes([version << 4 | command, family << 4 | transport]) + struct.pack('>H', length)
    return SIG2 + head + payload


V1_LONGEST = (
    b'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff '
    b'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n'
)
ALPN_TLV = b'\x01\x00\x02h2'  # PP2_TYPE_ALPN, 2 bytes

# (header, source address or None): every one a whole header
GOOD_HEADERS = [
    (b'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n', ('192.0.2.1', 56324)),
    (b'PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n', ('0.0.0.0', 0)),
    (b'PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n', ('2001:db8::1', 4711)),
    (b'PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n', ('::ffff:c000:201', 1)),
    (V1_LONGEST, ('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535)),
    (b'PROXY UNKNOWN\r\n', None),
    (b'PROXY UNKNOWN 2001:db8::1 2001:db8::2 4711 443\r\n', None),
    (b'PROXY UNKNOWN ' + b'x' * 91 + b'\r\n', None),  # 107 bytes: the longest
    (v2(), ('192.0.2.1', 56324)),
    (v2(family=2), ('2001:db8::1', 4711)),
    (v2(tlvs=ALPN_TLV), ('192.0.2.1', 56324)),  # TLVs skipped
    (v2(family=2, tlvs=b'\x04' + struct.pack('>H', 300) + b'n' * 300), ('2001:db8::1', 4711)),
    (v2(transport=0), ('192.0.2.1', 56324)),
    (v2(command=0), None),  # LOCAL: a health check, the socket peer stays
    (v2(command=0, family=0, transport=0), None),
    (v2(command=0, transport=2), None),  # LOCAL: the rest is ignored
    (v2(family=0, transport=0), None),  # no address family
    (v2(family=3), None),  # UNIX: no IP address
    (v2(tlvs=b'\0' * (MAX_PROXY_V2_LEN - 16 - 12)), ('192.0.2.1', 56324)),  # the longest
]

# (whole header, exact error)
BAD_HEADERS = [
    (b'PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n',
     "bad PROXY v1 address: b'PROXY TCP4 2001:db8::1 2001:db8::2 1 2\\r\\n'"),
    (b'PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n',
     "bad PROXY v1 address: b'PROXY TCP6 192.0.2.1 192.0.2.2 1 2\\r\\n'"),
    (b'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n',
     "bad PROXY v1 address: b'PROXY TCP4 01.2.3.4 5.6.7.8 1 2\\r\\n'"),
    (b'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n',
     "bad PROXY v1 header: b'PROXY tcp4 1.2.3.4 5.6.7.8 1 2\\r\\n'"),
    (b'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n',
     "bad PROXY v1 header: b'PROXY TCP4 1.2.3.4  5.6.7.8 1 2\\r\\n'"),
    (b'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
     "bad PROXY v1 header: b'PROXY TCP4 1.2.3.4 5.6.7.8 1\\r\\n'"),
    (b'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n',
     "bad PROXY v1 header: b'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \\r\\n'"),
    (b'PROXY \r\n', "bad PROXY v1 header: b'PROXY \\r\\n'"),
    (b'PROXY UNKNOWNX\r\n', "bad PROXY v1 header: b'PROXY UNKNOWNX\\r\\n'"),
    (b'PROXY UNKNOWN \xff\r\n', "bad PROXY v1 header: b'PROXY UNKNOWN \\xff\\r\\n'"),
    (b'PROXY UNKNOWN \r\r\n', "bad PROXY v1 header: b'PROXY UNKNOWN \\r\\r\\n'"),
    (b'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', "bad PROXY v1 port: '65536'"),
    (b'PROXY TCP4 1.2.3.4 5.6.7.8 1 01\r\n', "bad PROXY v1 port: '01'"),
    (b'PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n', "bad PROXY v1 port: '+1'"),
    (b'PROXY TCP4 1.2.3.4 5.6.7.8 1 \xd9\xa1\r\n',
     "bad PROXY v1 header: b'PROXY TCP4 1.2.3.4 5.6.7.8 1 \\xd9\\xa1\\r\\n'"),
    (v2(version=1), 'bad PROXY v2 version: 1'),
    (v2(version=3), 'bad PROXY v2 version: 3'),
    (v2(command=2), 'bad PROXY v2 command: 2'),
    (v2(command=15), 'bad PROXY v2 command: 15'),
    (v2(family=4, addresses=b''), 'bad PROXY v2 address family: 4'),
    (v2(transport=3), 'bad PROXY v2 transport: 3'),
    (v2(transport=2), 'PROXY v2 transport is DGRAM, not a stream'),
    (v2(addresses=b'\0' * 11), 'PROXY v2 addresses need 12 bytes; got 11'),
    (v2(family=2, addresses=b'\0' * 35), 'PROXY v2 addresses need 36 bytes; got 35'),
    (v2(family=3, addresses=b'\0' * 215), 'PROXY v2 addresses need 216 bytes; got 215'),
]

# (bytes received so far, the header's length or None: more needed)
HEADER_ENDS = [
    (b'P', None),
    (b'PROXY', None),
    (b'PROXY ', None),
    (b'PROXY UNKNOWN\r', None),
    (b'PROXY UNKNOWN\r\n', 15),
    (b'PROXY UNKNOWN\r\nGET / HTTP/1.1\r\n\r\n', 15),
    (b'PROXY UNKNOWN\r\n\x16\x03\x01\x02\x00', 15),  # then a TLS ClientHello
    (b'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', None),  # a bare LF is no end
    (b'PROXY ' + b'x' * 100, None),
    (b'\r', None),
    (b'\r\n\r\n\x00\r\nQUIT', None),
    (SIG2 + b'\x21\x11\x00', None),
    (SIG2 + b'\x21\x11\x00\x0c', 28),
    (SIG2 + b'\x21\x11\x00\x0c' + b'GET', 28),
    (SIG2 + b'\x20\x00\x00\x00', 16),
    (SIG2 + b'\x21\x11' + struct.pack('>H', MAX_PROXY_V2_LEN - 16), MAX_PROXY_V2_LEN),
]

# (bytes received so far, exact error)
HEADER_END_ERRORS = [
    (b'GET / HTTP/1.1\r\n', "no PROXY protocol header: b'GET / HTTP/1.1\\r\\n'"),
    (b'\x16\x03\x01\x02\x00\x01', "no PROXY protocol header: b'\\x16\\x03\\x01\\x02\\x00\\x01'"),
    (b'proxy ', "no PROXY protocol header: b'proxy '"),
    (b'PROXYTCP4', "no PROXY protocol header: b'PROXYTCP4'"),
    (b'\r\n\r\n\x00\r\nQUIX', "no PROXY protocol header: b'\\r\\n\\r\\n\\x00\\r\\nQUIX'"),
    (b'\r\n\r\n\r\n', "no PROXY protocol header: b'\\r\\n\\r\\n\\r\\n'"),
    (b'PROXY ' + b'x' * 101, 'PROXY v1 header longer than 107 bytes'),
    (b'PROXY ' + b'x' * 100 + b'\r\n', 'PROXY v1 header longer than 107 bytes'),  # 108
    (SIG2 + b'\x21\x11' + struct.pack('>H', MAX_PROXY_V2_LEN - 15),
     f'need a PROXY v2 header <= {MAX_PROXY_V2_LEN} bytes; got {MAX_PROXY_V2_LEN + 1}'),
    (SIG2 + b'\x21\x11\xff\xff', f'need a PROXY v2 header <= {MAX_PROXY_V2_LEN} bytes; got 65551'),
]


def test_limits():
    assert MAX_PROXY_V1_LEN == 107
    assert MAX_PROXY_V2_LEN == 4096
    assert len(V1_LONGEST) == 104
    assert len(GOOD_HEADERS[7][0]) == MAX_PROXY_V1_LEN


@pytest.mark.parametrize(('header', 'expected'), GOOD_HEADERS)
def test_parse_proxy_header(header, expected):
    assert proxy_header_end(header) == len(header)
    assert proxy_header_end(header + b'GET / HTTP/1.1\r\n') == len(header)
    assert parse_proxy_header(header) == expected
    assert parse_proxy_header(bytearray(header)) == expected


@pytest.mark.parametrize(('header', 'message'), BAD_HEADERS)
def test_parse_proxy_header_errors(header, message):
    assert proxy_header_end(header) == len(header)  # whole, but wrong inside
    with pytest.raises(ValueError) as e:
        parse_proxy_header(header)
    assert str(e.value) == message


@pytest.mark.parametrize(('data', 'expected'), HEADER_ENDS)
def test_proxy_header_end(data, expected):
    assert proxy_header_end(data) == expected


@pytest.mark.parametrize(('data', 'message'), HEADER_END_ERRORS)
def test_proxy_header_end_errors(data, message):
    with pytest.raises(ValueError) as e:
        proxy_header_end(data)
    assert str(e.value) == message


@pytest.mark.parametrize('header', [h for (h, _) in GOOD_HEADERS + BAD_HEADERS])
def test_truncated(header):
    # Cut at every offset: "more needed" (v2: its length once known), never a wrong length.
    for cut in range(1, len(header)):
        assert proxy_header_end(header[:cut]) in (None, len(header))
        if cut < 16:
            assert proxy_header_end(header[:cut]) is None
        with pytest.raises(ValueError) as e:
            parse_proxy_header(header[:cut])
        assert str(e.value).startswith('not one whole PROXY header: ')


def test_wrong_signature_every_byte():
    # Any other byte at any position of either signature: refused at once.
    for sig in (b'PROXY ', SIG2):
        for i in range(len(sig)):
            for byte in range(256):
                if byte == sig[i]:
                    continue
                data = sig[:i] + bytes([byte])
                if (data[:6] == b'PROXY '[:len(data)]) or (data[:12] == SIG2[:len(data)]):
                    continue  # a prefix of the other signature
                with pytest.raises(ValueError) as e:
                    proxy_header_end(data)
                assert str(e.value).startswith('no PROXY protocol header: ')


def test_parse_proxy_header_arbitrary_bytes():
    # Whatever the bytes: a value, None, or a ValueError; nothing else.
    rng = __import__('random').Random(7)
    for (header, _) in GOOD_HEADERS:
        for _ in range(50):
            data = bytearray(header)
            data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                end = proxy_header_end(bytes(data))
                if end is not None and end <= len(data):
                    parse_proxy_header(bytes(data[:end]))
            except ValueError:
                pass


# --------------------------------------------------------------------------
# Forwarding headers

NODES = [
    ('192.0.2.43', ('192.0.2.43', 0)),
    ('192.0.2.43:8080', ('192.0.2.43', 8080)),
    ('2001:db8::17', ('2001:db8::17', 0)),
    ('2001:DB8:0::17', ('2001:db8::17', 0)),
    ('[2001:db8::17]', ('2001:db8::17', 0)),
    ('[2001:db8::17]:4711', ('2001:db8::17', 4711)),
    ('::1', ('::1', 0)),
]
BAD_NODES = [
    '', 'unknown', '_hidden', '_SEVKISEK', 'example.com', '192.0.2.43:', '192.0.2.43:65536',
    '192.0.2.43:08', '[2001:db8::17', '[2001:db8::17]x', '[192.0.2.43]', '[2001:db8::17]:',
    '01.2.3.4', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4:80:80',
]


@pytest.mark.parametrize(('text', 'expected'), NODES)
def test_parse_forwarded_node(text, expected):
    assert parse_forwarded_node(text) == expected


@pytest.mark.parametrize('text', BAD_NODES)
def test_parse_forwarded_node_errors(text):
    with pytest.raises(ValueError):
        parse_forwarded_node(text)


TRUSTED = TrustedProxies(['127.0.0.1', '10.0.0.0/8', '2001:db8:ffff::/48'])
PEER = ('127.0.0.1', 40000)

# (headers, expected (client, scheme)) for a request from PEER, a trusted proxy
ORIGINS = [
    ({}, (PEER, 'http')),
    ({'x-forwarded-for': '192.0.2.7'}, (('192.0.2.7', 0), 'http')),
    ({'x-forwarded-for': '192.0.2.7', 'x-forwarded-proto': 'https'}, (('192.0.2.7', 0), 'https')),
    ({'x-forwarded-for': '192.0.2.7', 'x-forwarded-proto': ' HTTPS '},
     (('192.0.2.7', 0), 'https')),
    ({'x-forwarded-proto': 'https'}, (PEER, 'https')),
    ({'x-forwarded-proto': 'https, http'}, (PEER, 'http')),  # a list: ignored
    ({'x-forwarded-proto': 'ftp'}, (PEER, 'http')),
    # the right-most untrusted address; whatever the client wrote on its left is ignored
    ({'x-forwarded-for': '203.0.113.9, 192.0.2.7'}, (('192.0.2.7', 0), 'http')),
    ({'x-forwarded-for': 'garbage, 192.0.2.7'}, (('192.0.2.7', 0), 'http')),
    ({'x-forwarded-for': '203.0.113.9, 192.0.2.7, 10.1.1.1'}, (('192.0.2.7', 0), 'http')),
    ({'x-forwarded-for': '192.0.2.7,10.1.1.1 ,  10.2.2.2'}, (('192.0.2.7', 0), 'http')),
    ({'x-forwarded-for': '2001:db8::9, 2001:db8:ffff::1'}, (('2001:db8::9', 0), 'http')),
    ({'x-forwarded-for': '[2001:db8::9]:4711'}, (('2001:db8::9', 4711), 'http')),
    # all trusted: the left-most one
    ({'x-forwarded-for': '10.3.3.3, 10.1.1.1'}, (('10.3.3.3', 0), 'http')),
    # malformed or unknown on the way: the peer stays the client
    ({'x-forwarded-for': '192.0.2.7, garbage'}, (PEER, 'http')),
    ({'x-forwarded-for': '192.0.2.7, unknown'}, (PEER, 'http')),
    ({'x-forwarded-for': ''}, (PEER, 'http')),
    ({'x-forwarded-for': '192.0.2.7,'}, (PEER, 'http')),
    ({'x-forwarded-for': 'example.com'}, (PEER, 'http')),
    # Forwarded (RFC 7239), read when there is no X-Forwarded-For
    ({'forwarded': 'for=192.0.2.60;proto=https;by=203.0.113.43'}, (('192.0.2.60', 0), 'https')),
    ({'forwarded': 'For="[2001:db8:cafe::17]:4711"'}, (('2001:db8:cafe::17', 4711), 'http')),
    ({'forwarded': 'for=192.0.2.43, for=198.51.100.17'}, (('198.51.100.17', 0), 'http')),
    ({'forwarded': 'for=192.0.2.43;proto=https, for=10.1.1.1;proto=http'},
     (('192.0.2.43', 0), 'https')),
    ({'forwarded': 'for=192.0.2.43 ; proto=https'}, (('192.0.2.43', 0), 'https')),
    ({'forwarded': 'for="\\192.0.2.43"'}, (('192.0.2.43', 0), 'http')),
    ({'forwarded': 'for=unknown'}, (PEER, 'http')),
    ({'forwarded': 'for=_hidden, for=10.1.1.1'}, (PEER, 'http')),
    ({'forwarded': 'by=10.1.1.1'}, (PEER, 'http')),
    ({'forwarded': 'for=192.0.2.43;proto=gopher'}, (('192.0.2.43', 0), 'http')),
    ({'forwarded': 'for=192.0.2.43;for=192.0.2.44'}, (PEER, 'http')),
    ({'forwarded': 'for=192.0.2.43,,for=10.1.1.1'}, (PEER, 'http')),
    ({'forwarded': 'for=[2001:db8::1]'}, (PEER, 'http')),  # unquoted: not a token
    ({'forwarded': 'for="192.0.2.43'}, (PEER, 'http')),
    ({'forwarded': 'for'}, (PEER, 'http')),
    # X-Forwarded-For wins over Forwarded
    ({'x-forwarded-for': '192.0.2.7', 'forwarded': 'for=192.0.2.8;proto=https'},
     (('192.0.2.7', 0), 'http')),
]


@pytest.mark.parametrize(('headers', 'expected'), ORIGINS)
def test_forwarded_origin(headers, expected):
    copy = dict(headers)
    assert forwarded_origin(headers, TRUSTED, PEER, 'http') == expected
    assert headers == copy  # never changed


def test_forwarded_origin_keeps_https():
    assert forwarded_origin({}, TRUSTED, PEER, 'https') == (PEER, 'https')
    assert forwarded_origin({'x-forwarded-proto': 'x'}, TRUSTED, PEER, 'https') == (PEER, 'https')


TRUSTS = [
    ('*', [('192.0.2.1', 1), ('::1', 1, 0, 0), '', b'\0abc'], []),
    ('unix', ['', '/tmp/sock', b''], [('127.0.0.1', 1)]),
    ('127.0.0.1', [('127.0.0.1', 1), ('::ffff:127.0.0.1', 1, 0, 0)], [('127.0.0.2', 1), '']),
    ('10.0.0.0/8, ::1', [('10.255.0.1', 1), ('::1', 8, 0, 0)], [('11.0.0.1', 1), ('::2', 1)]),
    (['192.0.2.0/24', 'unix'], [('192.0.2.9', 1), ''], [('192.0.3.1', 1)]),
    ('fe80::/10', [('fe80::1%eth0', 1, 0, 2)], [('fec0::1', 1)]),
    ([], [], [('127.0.0.1', 1), '']),
]


@pytest.mark.parametrize(('allow', 'trusted', 'untrusted'), TRUSTS)
def test_trusted_proxies(allow, trusted, untrusted):
    proxies = TrustedProxies(allow)
    for address in trusted:
        assert address in proxies
    for address in untrusted:
        assert address not in proxies


def test_trusted_proxies_errors():
    with pytest.raises(ValueError) as e:
        TrustedProxies('127.0.0.1, localhost')
    assert str(e.value) == ("forwarded_allow_ips: bad entry: 'localhost' (need an IP address, "
                            "a network, 'unix' or '*')")
    with pytest.raises(TypeError) as e:
        TrustedProxies({'127.0.0.1'})
    assert str(e.value).startswith('forwarded_allow_ips: need a str, list or tuple; got a ')
    with pytest.raises(TypeError) as e:
        TrustedProxies([b'127.0.0.1'])
    assert str(e.value) == "forwarded_allow_ips: need str entries; got b'127.0.0.1'"
    assert repr(TrustedProxies('127.0.0.1,*')) == "TrustedProxies(['127.0.0.1', '*'])"


# --------------------------------------------------------------------------
# Server options


def app_echo(session, request, api):
    info = {
        'address': session.address,
        'session_client': session.client,
        'client': request.client,
        'scheme': request.scheme,
        'mount': request.mount,
        'path': request.path,
        'xff': request.headers.get('x-forwarded-for'),
    }
    return (200, 'OK', {'content-type': 'application/json'}, json.dumps(info).encode())


def test_options():
    server = Server(('127.0.0.1', 0), app_echo)
    with server:
        assert server.forwarded_allow_ips is None
        assert server.proxy_protocol is False
        assert server.root_path == ''
    server = Server(('127.0.0.1', 0), app_echo, forwarded_allow_ips='127.0.0.1',
                    proxy_protocol=True, root_path='/api/v1/')
    with server:
        assert repr(server.forwarded_allow_ips) == "TrustedProxies(['127.0.0.1'])"
        assert server.proxy_protocol is True
        assert server.root_path == '/api/v1'
    with Server(('127.0.0.1', 0), app_echo, forwarded_allow_ips=[]) as server:
        assert server.forwarded_allow_ips is None  # nobody trusted


@pytest.mark.parametrize(('options', 'error', 'message'), [
    ({'proxy_protocol': 1}, TypeError, "proxy_protocol: need a <class 'bool'>; got a "
                                       "<class 'int'>: 1"),
    ({'root_path': b'/api'}, TypeError, "root_path: need a <class 'str'>; got a "
                                        "<class 'bytes'>: b'/api'"),
    ({'root_path': 'api'}, ValueError, "root_path: need '/' and path segments, as '/api'; "
                                       "got 'api'"),
    ({'root_path': '/a//b'}, ValueError, "root_path: need '/' and path segments, as '/api'; "
                                         "got '/a//b'"),
    ({'root_path': '/a/../b'}, ValueError, "root_path: need '/' and path segments, as "
                                           "'/api'; got '/a/../b'"),
    ({'root_path': '/a b'}, ValueError, "root_path: need '/' and path segments, as '/api'; "
                                        "got '/a b'"),
    ({'forwarded_allow_ips': 'nope'}, ValueError,
     "forwarded_allow_ips: bad entry: 'nope' (need an IP address, a network, 'unix' or '*')"),
    ({'forwarded_allow_ip': '*'}, TypeError, 'unsupported Server() **options: '
                                             'forwarded_allow_ip'),
])
def test_option_errors(options, error, message):
    with pytest.raises(error) as e:
        Server(('127.0.0.1', 0), app_echo, **options)
    assert str(e.value) == message


# --------------------------------------------------------------------------
# Live: raw bytes over loopback and AF_UNIX


def connect(address):
    return helpers.connect(address, DEADLINE)


def read_all(sock):
    data = b''
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        got = sock.recv(65536)
        if not got:
            return data
        data += got
    raise AssertionError(f'no close after {DEADLINE} s: {data!r}')


def exchange(address, data, pieces=1):
    """Send *data* (in *pieces*) then read the response to the close; returns (status, json)."""
    with connect(address) as sock:
        size = max(1, len(data) // pieces)
        for i in range(0, len(data), size):
            sock.sendall(data[i:i + size])
        raw = read_all(sock)
    (head, _, body) = raw.partition(b'\r\n\r\n')
    status = int(head.split(b' ')[1])
    return (status, json.loads(body) if body else None)


GET = b'GET /api/items?x=1 HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n\r\n'


@pytest.mark.parametrize(('header', 'client'), [
    (b'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n', ['192.0.2.1', 56324]),
    (b'PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n', ['2001:db8::1', 4711]),
    (v2(), ['192.0.2.1', 56324]),
    (v2(family=2, tlvs=ALPN_TLV), ['2001:db8::1', 4711]),
    (b'PROXY UNKNOWN\r\n', None),  # the socket peer
    (v2(command=0), None),
    (v2(family=0, transport=0), None),
])
@pytest.mark.parametrize('pieces', [1, 1000])
def test_proxy_protocol_live(header, client, pieces):
    with TempServer(('127.0.0.1', 0), app_echo, thread=True, proxy_protocol=True) as server:
        (status, info) = exchange(server.address, header + GET, pieces)
    assert status == 200
    assert info['address'][0] == '127.0.0.1'  # session.address: the socket peer
    if client is None:
        client = info['address']
    assert info['session_client'] == client
    assert info['client'] == client
    assert info['scheme'] == 'http'


def test_proxy_protocol_ipv6_and_unix(tmp_path):
    path = str(tmp_path / 'degu.sock')
    with TempServer(path, app_echo, thread=True, proxy_protocol=True) as server:
        assert exchange(server.address, v2() + GET)[1]['client'] == ['192.0.2.1', 56324]
        assert exchange(server.address, v2(command=0) + GET)[1]['client'] == ''
    try:
        server = TempServer(('::1', 0, 0, 0), app_echo, thread=True, proxy_protocol=True)
    except OSError:
        pytest.skip('no IPv6 loopback')
    with server:
        (_, info) = exchange(server.address, b'PROXY TCP4 192.0.2.9 192.0.2.1 80 80\r\n' + GET)
        assert info['client'] == ['192.0.2.9', 80]
        assert info['address'][0] == '::1'
        (_, info) = exchange(server.address, b'PROXY UNKNOWN\r\n' + GET)
        assert info['client'] == ['::1', info['address'][1]]  # (host, port) of the peer


@pytest.mark.parametrize('data', [
    GET,  # no header: refused, no HTTP answer
    b'PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n' + GET,
    b'PROXY ' + b'x' * 200 + b'\r\n' + GET,
    v2(version=1) + GET,
    SIG2 + b'\x21\x11\xff\xff' + GET,
    v2(transport=2) + GET,
    b'PROXY TCP4 1.2.3.4',  # truncated, then the peer closes its side
])
def test_proxy_protocol_refused(data, caplog):
    caplog.set_level('INFO', 'degu.server')
    with TempServer(('127.0.0.1', 0), app_echo, thread=True, proxy_protocol=True) as server:
        with connect(server.address) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            assert read_all(sock) == b''  # closed without a word (a lingering close: no reset)
        # The server goes on serving.
        (status, info) = exchange(server.address, b'PROXY UNKNOWN\r\n' + GET)
        assert status == 200
    if data != b'PROXY TCP4 1.2.3.4':
        assert 'bad PROXY protocol header, connection closed' in caplog.text


def test_proxy_protocol_timeout():
    with TempServer(('127.0.0.1', 0), app_echo, thread=True, proxy_protocol=True,
                    timeout=0.5) as server:
        with connect(server.address) as sock:
            start = time.monotonic()
            sock.sendall(b'PROXY TCP4 1.2')  # and no more: closed after timeout
            assert read_all(sock) == b''
            assert 0.4 <= time.monotonic() - start < 0.5 + 1.0


def test_proxy_protocol_tls():
    # The header comes in clear, then the TLS handshake, on the same socket.
    with TempPKI(client_pki=False) as pki:
        sslctx = build_client_sslctx(pki.anonymous_client_sslconfig)
        with TempSSLServer(pki.anonymous_server_sslconfig, ('127.0.0.1', 0), app_echo,
                           thread=True, proxy_protocol=True) as server:
            for header in (v2(family=2), b'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n'):
                with connect(server.address) as raw:
                    raw.sendall(header)
                    with sslctx.wrap_socket(raw) as sock:
                        sock.sendall(GET)
                        data = read_all(sock)
                info = json.loads(data.partition(b'\r\n\r\n')[2])
                assert info['scheme'] == 'https'
                assert info['client'] in (['2001:db8::1', 4711], ['192.0.2.1', 56324])
            # A header missing: the ClientHello is no header, the connection is closed.
            with connect(server.address) as raw:
                with pytest.raises((OSError, ConnectionError)):
                    sslctx.wrap_socket(raw)


XFF = b'x-forwarded-for: 203.0.113.9, 192.0.2.7\r\nx-forwarded-proto: https\r\n'


def request_with(headers, target=b'/api/items?x=1'):
    return (b'GET ' + target + b' HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n' +
            headers + b'\r\n')


@pytest.mark.parametrize(('allow', 'trusted'), [
    (None, False), ('10.0.0.0/8', False), ('127.0.0.1', True), ('127.0.0.0/8', True),
    ('*', 'all'), ('unix', False),
])
def test_trusted_live(allow, trusted):
    options = {} if allow is None else {'forwarded_allow_ips': allow}
    with TempServer(('127.0.0.1', 0), app_echo, thread=True, **options) as server:
        (_, info) = exchange(server.address, request_with(XFF))
    assert info['xff'] == '203.0.113.9, 192.0.2.7'  # left as it is
    if trusted == 'all':  # every address trusted: the left-most one
        assert (info['client'], info['scheme']) == (['203.0.113.9', 0], 'https')
    elif trusted:
        assert (info['client'], info['scheme']) == (['192.0.2.7', 0], 'https')
    else:
        assert (info['client'], info['scheme']) == (info['address'], 'http')
    assert info['session_client'] == info['address']


@pytest.mark.parametrize(('allow', 'trusted'), [
    (None, False), ('127.0.0.1', False), ('unix', True), ('*', 'all'),
])
def test_trusted_unix(tmp_path, allow, trusted):
    options = {} if allow is None else {'forwarded_allow_ips': allow}
    path = str(tmp_path / 'degu.sock')
    with TempServer(path, app_echo, thread=True, **options) as server:
        (_, info) = exchange(server.address, request_with(XFF))
    expected = {False: '', True: ['192.0.2.7', 0], 'all': ['203.0.113.9', 0]}[trusted]
    assert info['client'] == expected


def test_trusted_behind_proxy_protocol():
    # The PROXY header's source is the client the trust rules look at.
    with TempServer(('127.0.0.1', 0), app_echo, thread=True, proxy_protocol=True,
                    forwarded_allow_ips='10.0.0.0/8') as server:
        header = b'PROXY TCP4 10.9.9.9 10.0.0.1 5000 80\r\n'
        (_, info) = exchange(server.address, header + request_with(XFF))
        assert (info['client'], info['scheme']) == (['192.0.2.7', 0], 'https')
        header = b'PROXY TCP4 192.0.2.200 10.0.0.1 5000 80\r\n'
        (_, info) = exchange(server.address, header + request_with(XFF))
        assert (info['client'], info['scheme']) == (['192.0.2.200', 5000], 'http')


def test_keep_alive_each_request():
    # Each request on a kept-alive connection is looked at on its own.
    with TempServer(('127.0.0.1', 0), app_echo, thread=True,
                    forwarded_allow_ips='127.0.0.1') as server:
        client = Client(server.address)
        with client.connect() as conn:
            r1 = json.loads(conn.get('/', {'x-forwarded-for': '192.0.2.1'}).body.read())
            r2 = json.loads(conn.get('/', {}).body.read())
            r3 = json.loads(conn.get('/', {'x-forwarded-proto': 'https'}).body.read())
    assert (r1['client'], r1['scheme']) == (['192.0.2.1', 0], 'http')
    assert (r2['client'], r2['scheme']) == (r2['address'], 'http')
    assert (r3['client'], r3['scheme']) == (r3['address'], 'https')


@pytest.mark.parametrize(('target', 'mount', 'path'), [
    (b'/api/v1/items?x=1', ['api', 'v1'], ['items']),
    (b'/api/v1', ['api', 'v1'], []),
    (b'/api/v1/', ['api', 'v1'], ['']),
    (b'/api/v2/items', [], ['api', 'v2', 'items']),  # not under the prefix: as it is
    (b'/api', [], ['api']),
    (b'/', [], []),
])
def test_root_path_live(target, mount, path):
    with TempServer(('127.0.0.1', 0), app_echo, thread=True, root_path='/api/v1') as server:
        (_, info) = exchange(server.address, request_with(b'', target))
    assert (info['mount'], info['path']) == (mount, path)
    assert info['client'] == info['address']


def test_validator_live():
    with TempServer(('127.0.0.1', 0), Validator(app_echo), thread=True, root_path='/api',
                    forwarded_allow_ips='*') as server:
        (status, info) = exchange(server.address, request_with(XFF, b'/api/items'))
    assert status == 200
    assert info['client'] == ['203.0.113.9', 0]


def test_validator_checks():
    good = Request('GET', '/', {}, None, [], [], None, client=('192.0.2.1', 0),
                   scheme='https')
    seen = []
    app = Validator(lambda s, r, a: seen.append((r.client, r.scheme)) or (200, 'OK', {}, None))
    from degu.base import api
    app(Session(('127.0.0.1', 1)), good, api)
    assert seen == [(('192.0.2.1', 0), 'https')]

    class Odd:
        def __init__(self, **kw):
            self.__dict__.update(method='GET', uri='/', headers={}, body=None, mount=[],
                                 path=[], query=None, **kw)

    with pytest.raises(ValueError) as e:
        app(Session(('127.0.0.1', 1)), Odd(scheme='ftp'), api)
    assert str(e.value) == "request.scheme: need 'http' or 'https'; got 'ftp'"
    with pytest.raises(ValueError) as e:
        app(Session(('127.0.0.1', 1)), Odd(client=('a', 1, 2)), api)
    assert str(e.value) == "request.client: need a 2-tuple or 4-tuple; got ('a', 1, 2)"
    with pytest.raises(TypeError):
        app(Session(('127.0.0.1', 1)), Odd(client=42), api)


def test_request_and_session_attributes():
    r = Request('GET', '/', {}, None, [], [''], None)
    assert (r.client, r.scheme) == (None, 'http')
    with pytest.raises(ValueError) as e:
        Request('GET', '/', {}, None, [], [''], None, scheme='HTTPS')
    assert str(e.value) == "scheme: need 'http' or 'https'; got 'HTTPS'"
    with pytest.raises(AttributeError):
        r.client = ('192.0.2.1', 0)
    s = Session(('::1', 5000, 0, 0))
    assert s.client == ('::1', 5000)
    assert Session('/tmp/sock').client == '/tmp/sock'
    assert Session(('127.0.0.1', 1), client=('192.0.2.1', 2)).client == ('192.0.2.1', 2)
    with pytest.raises(TypeError) as e:
        Session(('127.0.0.1', 1), client='192.0.2.1')
    assert str(e.value) == "client: need a (host, port) tuple; got '192.0.2.1'"
    with pytest.raises(AttributeError):
        s.client = ('192.0.2.1', 0)


# --------------------------------------------------------------------------
# WSGI


def wsgi_echo(environ, start_response):
    keys = ('REMOTE_ADDR', 'REMOTE_PORT', 'wsgi.url_scheme', 'SERVER_NAME', 'SERVER_PORT',
            'SCRIPT_NAME', 'PATH_INFO', 'HTTP_HOST', 'HTTP_X_FORWARDED_FOR')
    body = json.dumps({k: environ.get(k) for k in keys}).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]


def test_wsgi_behind_proxy():
    with TempServer(('127.0.0.1', 0), WSGIApp(wsgi_echo), thread=True, root_path='/app',
                    forwarded_allow_ips='127.0.0.1') as server:
        (_, env) = exchange(server.address, request_with(XFF, b'/app/x/y'))
        assert env['REMOTE_ADDR'] == '192.0.2.7'
        assert env['REMOTE_PORT'] == '0'
        assert env['wsgi.url_scheme'] == 'https'
        assert (env['SERVER_NAME'], env['SERVER_PORT']) == ('example.com', '443')
        assert env['HTTP_HOST'] == 'example.com'
        assert (env['SCRIPT_NAME'], env['PATH_INFO']) == ('/app', '/x/y')
        assert env['HTTP_X_FORWARDED_FOR'] == '203.0.113.9, 192.0.2.7'
        (_, env) = exchange(server.address, request_with(b'', b'/other'))
        assert env['REMOTE_ADDR'] == '127.0.0.1'
        assert env['wsgi.url_scheme'] == 'http'
        assert (env['SCRIPT_NAME'], env['PATH_INFO']) == ('', '/other')
    with TempServer(('127.0.0.1', 0), WSGIApp(wsgi_echo), thread=True,
                    proxy_protocol=True) as server:
        (_, env) = exchange(server.address, v2(family=2) + request_with(XFF))
        assert (env['REMOTE_ADDR'], env['REMOTE_PORT']) == ('2001:db8::1', '4711')
        assert env['wsgi.url_scheme'] == 'http'  # 2001:db8::1 is no trusted proxy


# --------------------------------------------------------------------------
# ProxyApp


def upstream_echo(session, request, api):
    names = ('x-forwarded-for', 'x-forwarded-proto', 'via', 'forwarded')
    body = json.dumps({n: request.headers.get(n) for n in names}).encode()
    return (200, 'OK', {'content-type': 'application/json'}, body)


@pytest.mark.parametrize(('options', 'header', 'sent', 'expected'), [
    ({}, b'', b'', {'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http',
                    'via': '1.1 degu', 'forwarded': None}),
    # an untrusted client's list and Forwarded are dropped
    ({}, b'', b'x-forwarded-for: 6.6.6.6\r\nforwarded: for=6.6.6.6\r\nvia: 1.0 fred\r\n',
     {'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http',
      'via': '1.0 fred, 1.1 degu', 'forwarded': None}),
    # a trusted proxy's list is kept and extended
    ({'forwarded_allow_ips': '127.0.0.1'}, b'',
     b'x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: https\r\nforwarded: for=192.0.2.7\r\n',
     {'x-forwarded-for': '192.0.2.7, 127.0.0.1', 'x-forwarded-proto': 'https',
      'via': '1.1 degu', 'forwarded': 'for=192.0.2.7'}),
    # behind the PROXY protocol: the client it names is the peer appended
    ({'proxy_protocol': True}, b'PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n',
     b'x-forwarded-for: 6.6.6.6\r\n',
     {'x-forwarded-for': '[2001:db8::1]', 'x-forwarded-proto': 'http', 'via': '1.1 degu',
      'forwarded': None}),
])
def test_proxyapp_forwarding(options, header, sent, expected):
    with TempServer(('127.0.0.1', 0), upstream_echo, thread=True) as upstream:
        app = ProxyApp(Client(upstream.address))
        with TempServer(('127.0.0.1', 0), app, thread=True, **options) as front:
            (status, info) = exchange(front.address, header + request_with(sent))
    assert status == 200
    assert info == expected


def test_proxyapp_http10_via():
    with TempServer(('127.0.0.1', 0), upstream_echo, thread=True) as upstream:
        app = ProxyApp(Client(upstream.address))
        with TempServer(('127.0.0.1', 0), app, thread=True) as front:
            (_, info) = exchange(front.address, b'GET / HTTP/1.0\r\n\r\n')
    assert info['via'] == '1.0 degu'


def test_no_stray_files(tmp_path):
    # An AF_UNIX server with the options cleans up like any other.
    path = str(tmp_path / 's.sock')
    with TempServer(path, app_echo, thread=True, proxy_protocol=True,
                    forwarded_allow_ips='unix', root_path='/x'):
        assert os.path.exists(path)
    assert not os.path.exists(path)


def test_wsgi_scheme_from_the_request():
    # Served by degu, request.scheme decides, over TLS too; a Request made by hand
    # falls back on what on_connect saw.
    app = WSGIApp(wsgi_echo)
    session = Session(('127.0.0.1', 1))
    session.store['_wsgi_url_scheme'] = 'https'
    by_hand = Request('GET', '/', {'host': 'h'}, None, [], [], None)
    assert app.environ(session, by_hand)['wsgi.url_scheme'] == 'https'
    served = Request('GET', '/', {'host': 'h'}, None, [], [], None, client=('192.0.2.1', 0))
    assert app.environ(session, served)['wsgi.url_scheme'] == 'http'
    assert app.environ(session, served)['REMOTE_ADDR'] == '192.0.2.1'


def test_trusted_proxies_cache_bounded():
    from degu._forwarded import MAX_SEEN

    proxies = TrustedProxies('10.0.0.0/8')
    for i in range(MAX_SEEN + 10):
        host = str(ipaddress.IPv4Address(0x0A000000 + i if i % 2 else 0xC0000200 + i))
        assert proxies.trusts(host) is bool(i % 2)
        assert proxies.trusts(host) is bool(i % 2)  # remembered: the same answer
    assert len(proxies._seen) <= MAX_SEEN
    assert parse_forwarded_node.cache_info().maxsize == MAX_SEEN
