"""Whole preambles in one C call: ``scan_request()`` and ``scan_response()``.

On the C core, ``read_request()`` and ``read_response_head()`` hand the
transport's buffer to degu._cparse first and take their Python path when it
answers ``None``.  The proof that nothing changes: every case below is read
both ways from the same bytes, through the scanner and through the Python
path with the pure-Python parsers (what ``DEGU_PURE=1`` runs), and both must
give the same message (every field, the body's type and length) or the same
exception (type, message, status, reason), with the transport's offsets the
same afterwards.  The tables say which cases the scanner takes itself; the
property tests feed valid, mutated and random preambles, in one piece or
cut, over small and large buffers; the live tests read from a socketpair.
"""

import inspect
import random
import socket

import pytest
from fuzz_core import (
    HEADER_LINES,
    REQUEST_LINES,
    STATUS_LINES,
    ChunkSocket,
    both_ways,
    compare_read,
    mutate,
    read_cases,
)
from helpers import C_CORE, DIFF, need_c, run_python
from hypothesis import given
from hypothesis import strategies as st

from degu import _io, _parse
from degu._body import _NO_ORIGIN, Request
from degu._framing import CHUNKED, CLOSE, LENGTH, NO_BODY
from degu._transport import Transport

C = C_CORE
if C is not None:
    C._bind_request(Request, _NO_ORIGIN)  # degu._io does it on the C core alone
pytestmark = need_c
# max_preamble and max_header_count: read_request()'s defaults
LIMITS = (_parse.MAX_PREAMBLE_LEN, _parse.MAX_HEADER_COUNT)


def chunkings(wire):
    """The ways a peer may send *wire*: whole, a byte then the rest, cut at a few places."""
    yield [wire]
    yield [wire[:1], wire[1:]]
    for cut in range(7, len(wire), 23):
        yield [wire[:cut], wire[cut:]]


def same(wire, method=None, args=(), buffer_size=None):
    for chunks in chunkings(wire):
        compare_read(C, chunks, method, args, buffer_size)


# --------------------------------------------------------------------------
# Selection


def test_readers_on_each_core():
    if _parse.CORE == 'c':
        assert _io.read_request is _io._scan_request
        assert _io.read_response_head is _io._scan_response_head
        assert _io.read_request.__wrapped__ is _io._read_request
        assert _parse.scan_request is C.scan_request
    else:
        assert _io.read_request is _io._read_request
        assert _io.read_response_head is _io._read_response_head
    code = ('import degu._io as io, degu._parse as p, degu.server as s\n'
            'print(io.read_request is io._read_request, p.scan_request, '
            's.read_request is io.read_request)')
    assert run_python(code, DEGU_PURE='1') == 'True None True'
    assert run_python(code) == 'False <built-in function scan_request> True'


@pytest.mark.parametrize(('fast', 'python'), [
    ('_scan_request', '_read_request'),
    ('_scan_response_head', '_read_response_head'),
])
def test_same_signature_and_doc(fast, python):
    (fast, python) = (getattr(_io, fast), getattr(_io, python))
    assert inspect.signature(fast) == inspect.signature(python)
    if _parse.CORE == 'c':
        assert fast.__doc__ == python.__doc__
        assert fast.__name__ == python.__name__


# --------------------------------------------------------------------------
# Requests: what the scanner takes, what it leaves to the Python path

GET = b'GET /api/items?page=2 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n'

# (wire, taken by the scanner).  Read with read_request()'s default limits.
REQUESTS = [
    (GET, True),
    (b'GET / HTTP/1.1\r\n\r\n', True),
    (b'GET / HTTP/1.0\r\n\r\n', True),
    (b'HEAD /a/b/ HTTP/1.1\r\nhost: x\r\n\r\n', True),
    (b'POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello', True),
    (b'PUT /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n', True),
    (b'PUT /a HTTP/1.1\r\nContent-Length: 0017\r\n\r\n', True),
    (b'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', True),
    (b'POST /a HTTP/1.1\r\ntransfer-encoding: CHUNKED\r\n\r\n0\r\n\r\n', True),
    (b'DELETE /a%20b/%7E?x=%41&y HTTP/1.1\r\nX-Empty:\r\nX-Tab: \ta\t\r\n\r\n', True),
    (b'GET /x?{a}|b^c`d HTTP/1.1\r\nX-Latin: caf\xe9\r\n\r\n', True),
    (b'OPTIONS /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', True),
    (b'GET / HTTP/1.1\r\nHost: a%2Fb\r\n\r\nGET / HTTP/1.1\r\n\r\n', True),  # pipelined
    (b'GET / HTTP/1.1\r\n\r\nhello', True),  # what follows is the next request's
    (b'GET /a HTTP/1.1\r\nhost: h\r\nHOST: h\r\n\r\n', False),  # a repeated field
    (b'GET /a HTTP/1.1\r\nSet-Cookie: a\r\nset-cookie: b\r\n\r\n', False),
    (b'POST /a HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', False),
    (b'POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n', False),
    (b'POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\n', False),
    (b'POST /a HTTP/1.1\r\nContent-Length: 99999999999999999\r\n\r\n', False),
    (b'POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', False),
    (b'GET /a HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n', False),  # the Python path's, on GET too
    (b'POST /a HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n', False),  # dropped there
    (b'PUT /a HTTP/1.1\r\nContent-Range: bytes 0-4/10\r\n\r\n', False),
    (b'GET http://example.com:8080/a?b HTTP/1.1\r\n\r\n', False),  # absolute-form
    (b'GET http://example.com/a HTTP/1.1\r\nHost: other\r\n\r\n', False),
    (b'GET http://example.com/a HTTP/1.0\r\n\r\n', False),
    (b'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', False),
    (b'\r\nGET / HTTP/1.1\r\n\r\n', False),  # an empty line first (RFC 9112 section 2.2)
    (b'\r\n\r\nGET / HTTP/1.1\r\n\r\n', False),
    (b'\r\n\r\n\r\n\r\n', False),
    (b'\r\n\r\n', False),
    (b'', False),  # EOF first
    (b'GET / HTTP/1.1\r\n', False),  # EOF midway
    (b'GET / HTTP/1.1\r\nHost: x\r\n', False),
    (b'get / HTTP/1.1\r\n\r\n', False),
    (b'TRACE / HTTP/1.1\r\n\r\n', False),
    (b'GET / HTTP/1.2\r\n\r\n', False),
    (b'GET / HTTP/2.0\r\n\r\n', False),
    (b'GET  / HTTP/1.1\r\n\r\n', False),
    (b'GET / HTTP/1.1 \r\n\r\n', False),
    (b'GET /a/../b HTTP/1.1\r\n\r\n', False),
    (b'GET //a HTTP/1.1\r\n\r\n', False),
    (b'GET /%zz HTTP/1.1\r\n\r\n', False),
    (b'GET /a#b HTTP/1.1\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\nbad name: x\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\n: x\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\nno colon\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\n folded: x\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\nX: a\rb\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\nX: a\nb\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', False),
    (b'GET / HTTP/1.1\n\r\n\r\n', False),
    (b'GET / HTTP/1.1\r\r\n\r\n', False),
    (b'GET /' + b'a' * 8200 + b' HTTP/1.1\r\n\r\n', False),  # 414
    (b'GET / HTTP/1.1\r\nX: ' + b'v' * 9000 + b'\r\n\r\n', True),
    (b'GET / HTTP/1.1\r\nX: ' + b'v' * 33000 + b'\r\n\r\n', False),  # 431
    (b'GET / HTTP/1.1\r\n' + b'X-A: 1\r\n' * 101 + b'\r\n', False),  # 431, count
    (b'GET / HTTP/1.1\r\n' + b''.join(b'X-%d: 1\r\n' % i for i in range(100)) + b'\r\n', True),
    (b'GET /' + b'a' * (8192 - 14) + b' HTTP/1.1\r\n\r\n', True),  # an 8,192-byte line
    (b'GET /' + b'a' * (8192 - 13) + b' HTTP/1.1\r\n\r\n', False),  # 8,193: 414
]


@pytest.mark.parametrize(('wire', 'taken'), REQUESTS)
def test_request(wire, taken):
    buf = bytearray(wire)
    found = C.scan_request(buf, 0, len(buf), *LIMITS)
    assert (found is not None) == taken
    same(wire)
    same(wire, args=(4096, 100, 3))  # max_body


@pytest.mark.parametrize(('wire', 'taken'), REQUESTS)
def test_request_over_a_socketpair(wire, taken):
    sockets = []

    def make():
        (a, b) = socket.socketpair()
        sockets.extend((a, b))
        b.sendall(wire)
        b.shutdown(socket.SHUT_WR)
        return Transport(a, timeout=5)

    try:
        (expected, got) = both_ways(C, make)
    finally:
        for sock in sockets:
            sock.close()
    assert got == expected


def fields(request):
    return (type(request), request.method, request.uri, request.headers, request.body,
            request.mount, request.path, request.query, request.version, request.client,
            request.scheme)


def test_request_fields():
    buf = bytearray(b'xx' + GET + b'zz')
    (end, kind, length, request) = C.scan_request(buf, 2, len(buf), *LIMITS)
    assert (end, kind, length) == (2 + len(GET), NO_BODY, None)
    expected = Request('GET', '/api/items?page=2', {'host': 'example.com', 'accept': '*/*'},
                       None, [], ['api', 'items'], 'page=2', version='HTTP/1.1')
    assert fields(request) == fields(expected)
    assert request._origin is _NO_ORIGIN
    wire = b'POST / HTTP/1.0\r\nContent-Length: 12\r\n\r\n'
    found = C.scan_request(bytearray(wire), 0, len(wire), *LIMITS)
    assert found[:3] == (len(wire), LENGTH, 12)
    assert found[3].headers == {'content-length': 12}
    assert found[3].body is None  # the reader puts it in
    wire = b'POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n'
    found = C.scan_request(bytearray(wire), 0, len(wire), *LIMITS)
    assert found[:3] == (len(wire), CHUNKED, None)
    assert found[3].headers == {'transfer-encoding': 'chunked'}
    # Fresh mutable parts each time.
    again = C.scan_request(buf, 2, len(buf), *LIMITS)[3]
    assert again.headers is not request.headers
    assert again.path is not request.path and again.mount is not request.mount


def test_bind_request_checks_the_class():
    class NoSlots:
        pass

    class Odd:
        __slots__ = ('_method',)

    class OwnNew(Request):
        __slots__ = ()

        def __new__(cls):
            return object.__new__(cls)

    class Sub(Request):  # the slots are Request's, not its own
        __slots__ = ()

    for cls in (NoSlots, Odd, Sub):
        with pytest.raises(ValueError, match='has no slot _method|has no slot _uri'):
            C._bind_request(cls, _NO_ORIGIN)
    with pytest.raises(ValueError, match=r'is not made by object.__new__\(\)'):
        C._bind_request(OwnNew, _NO_ORIGIN)
    with pytest.raises(TypeError, match='need'):
        C._bind_request('Request', _NO_ORIGIN)
    with pytest.raises(TypeError, match='need'):
        C._bind_request(Request)
    # Still bound to Request after the refusals.
    assert type(C.scan_request(bytearray(GET), 0, len(GET), *LIMITS)[3]) is Request


def test_unbound_scan_request_says_so():
    code = (
        'import degu._parse as p, degu._cparse as c\n'
        'p._load_c_core()\n'
        'try:\n'
        '    c.scan_request(bytearray(b"GET / HTTP/1.1\\r\\n\\r\\n"), 0, 18, 8192, 100)\n'
        'except RuntimeError as e:\n'
        '    print(e)\n'
    )
    assert run_python(code, DEGU_PURE='1') == (
        'degu._cparse.scan_request: no Request class; call _bind_request() first'
    )


def test_request_read_twice():
    # The caches: the second read of the same preamble gives equal, fresh objects.
    for _ in range(2):
        transport = Transport(ChunkSocket([GET * 2]))
        first = _io.read_request(transport)
        first.headers['x'] = 'changed'
        first.path.append('changed')
        second = _io.read_request(transport)
        assert second.headers == {'host': 'example.com', 'accept': '*/*'}
        assert second.path == ['api', 'items']
        assert (transport._start, transport._stop) == (2 * len(GET), 2 * len(GET))


@pytest.mark.parametrize('max_body', [None, 0, 4, 5, 6])
def test_request_max_body(max_body):
    same(b'POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello', args=(8192, 100, max_body))
    wire = b'POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
    same(wire, args=(8192, 100, max_body))


def test_request_max_preamble_exactly():
    # The preamble, CRLFCRLF included, within max_preamble: as read_block() decides.
    size = len(GET)
    for limit in (size - 1, size, size + 1, 0, 3, 4):
        found = C.scan_request(bytearray(GET), 0, len(GET), limit, 100)
        assert (found is not None) == (limit >= size), limit
        same(GET, args=(limit,))
        same(GET, args=(limit,), buffer_size=16)


def test_request_max_header_count_exactly():
    for count in (0, 1, 2, 3):
        found = C.scan_request(bytearray(GET), 0, len(GET), 8192, count)
        assert (found is not None) == (count >= 2), count
        same(GET, args=(8192, count))


def test_request_small_buffer():
    # The transport's buffer grows (Transport._grow()) on the Python path.
    for (wire, _) in REQUESTS[:15]:
        same(wire, buffer_size=8)


# --------------------------------------------------------------------------
# Responses

OK = b'HTTP/1.1 200 OK\r\ncontent-length: 12\r\ncontent-type: text/plain\r\n\r\nHello, World'

RESPONSES = [
    (OK, 'GET', True),
    (OK, 'HEAD', True),
    (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 'GET', True),
    (b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil EOF', 'GET', True),
    (b'HTTP/1.0 200 OK\r\n\r\nuntil EOF', 'POST', True),
    (b'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', 'DELETE', True),
    (b'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n', 'GET', True),
    (b'HTTP/1.1 100 Continue\r\n\r\n', 'PUT', True),
    (b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n', 'GET', True),
    (b'HTTP/1.1 199 x\r\n\r\n', 'GET', True),
    (b'HTTP/1.1 200\r\n\r\n', 'GET', True),
    (b'HTTP/1.1 200 \r\n\r\n', 'GET', True),
    (b'HTTP/1.1 500 Internal\tServer \xe9rror\r\nContent-Length: 0\r\n\r\n', 'GET', True),
    (b'HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-4/10\r\n\r\n', 'GET', False),
    (b'HTTP/1.1 206 Partial\r\nRange: bytes=0-4\r\nContent-Length: 1\r\n\r\nx', 'GET', True),
    (b'HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\n', 'GET', False),
    (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', 'GET', False),  # 501 there
    (b'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', 'GET',
     False),
    (b'HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n', 'GET', False),
    (b'HTTP/1.1 200 OK\r\nHost: a b\r\n\r\n', 'GET', True),  # a response's host is text
    (b'HTTP/1.1 600 Nope\r\n\r\n', 'GET', False),
    (b'HTTP/1.1 099 Nope\r\n\r\n', 'GET', False),
    (b'HTTP/1.1 2000 OK\r\n\r\n', 'GET', False),
    (b'HTTP/1.1 200 a\x7fb\r\n\r\n', 'GET', False),
    (b'HTTP/1.2 200 OK\r\n\r\n', 'GET', False),
    (b'HTTP/2 200 OK\r\n\r\n', 'GET', False),
    (b'\r\nHTTP/1.1 200 OK\r\n\r\n', 'GET', False),
    (b'\r\n\r\n', 'GET', False),
    (b'', 'GET', False),
    (b'HTTP/1.1 200 OK\r\n', 'GET', False),
    (b'HTTP/1.1 200 OK\r\nX: ' + b'v' * 33000 + b'\r\n\r\n', 'GET', False),
    (b'HTTP/1.1 200 OK\r\n' + b'X-A: 1\r\n' * 101 + b'\r\n', 'GET', False),
]


@pytest.mark.parametrize(('wire', 'method', 'taken'), RESPONSES)
def test_response(wire, method, taken):
    buf = bytearray(wire)
    found = C.scan_response(buf, 0, len(buf), *LIMITS, method)
    assert (found is not None) == taken
    same(wire, method)
    same(wire, 'HEAD' if method != 'HEAD' else 'GET')


@pytest.mark.parametrize(('wire', 'method', 'taken'), RESPONSES)
def test_response_over_a_socketpair(wire, method, taken):
    sockets = []

    def make():
        (a, b) = socket.socketpair()
        sockets.extend((a, b))
        b.sendall(wire)
        b.shutdown(socket.SHUT_WR)
        return Transport(a, timeout=5)

    try:
        (expected, got) = both_ways(C, make, method)
    finally:
        for sock in sockets:
            sock.close()
    assert got == expected


def test_response_fields():
    found = C.scan_response(bytearray(OK), 0, len(OK), *LIMITS, 'GET')
    assert found == (len(OK) - 12, LENGTH, 12, 'HTTP/1.1', 200, 'OK',
                     {'content-length': 12, 'content-type': 'text/plain'})
    assert C.scan_response(bytearray(OK), 0, len(OK), *LIMITS, 'HEAD')[1:3] == (NO_BODY, None)
    wire = b'HTTP/1.0 200 OK\r\n\r\n'
    assert C.scan_response(bytearray(wire), 0, len(wire), *LIMITS, 'GET')[1:3] == (CLOSE, None)


def test_response_limits_exactly():
    size = len(OK) - 12
    for limit in (size - 1, size, size + 1):
        found = C.scan_response(bytearray(OK), 0, len(OK), limit, 100, 'GET')
        assert (found is not None) == (limit >= size)
        same(OK, 'GET', (limit,))
    for count in (1, 2, 3):
        found = C.scan_response(bytearray(OK), 0, len(OK), 8192, count, 'GET')
        assert (found is not None) == (count >= 2)
        same(OK, 'GET', (8192, count))


# --------------------------------------------------------------------------
# The arguments: the buffer is never read outside buf[start:stop]


@pytest.mark.parametrize('scan', ['scan_request', 'scan_response'])
def test_offsets_checked(scan):
    extra = ('GET',) if scan == 'scan_response' else ()
    scan = getattr(C, scan)
    buf = bytearray(GET)
    for (start, stop) in [(-1, 5), (5, 4), (0, len(buf) + 1), (len(buf) + 1, len(buf) + 1),
                          (-(2 ** 40), 0)]:
        with pytest.raises(ValueError, match=r'need 0 <= start <= stop <= len\(buf\); got'):
            scan(buf, start, stop, *LIMITS, *extra)
    for (start, stop) in [(2 ** 70, 0), (0, 2 ** 70)]:
        with pytest.raises(OverflowError):
            scan(buf, start, stop, *LIMITS, *extra)
    with pytest.raises(TypeError, match='need int offsets'):
        scan(buf, 0.0, 5, *LIMITS, *extra)
    with pytest.raises(TypeError, match='positional arguments'):
        scan(buf, 0, 5, *LIMITS[:1], *extra)
    with pytest.raises(TypeError, match='positional arguments'):
        scan(buf, 0, 5, *LIMITS, *extra, max_body=None)
    with pytest.raises(TypeError):
        scan('text', 0, 0, *LIMITS, *extra)


def test_odd_limits_take_the_python_path():
    buf = bytearray(GET)
    for limits in [(8192.0, 100), (8192, '100'), (True, 100), (2 ** 70, 100), (8192, 2 ** 70),
                   (None, 100)]:
        assert C.scan_request(buf, 0, len(buf), *limits) is None
    resp = bytearray(OK)
    assert C.scan_response(resp, 0, len(resp), *LIMITS, b'GET') is None
    assert C.scan_response(resp, 0, len(resp), *LIMITS, None) is None


def test_stop_bounds_the_search():
    # A CRLFCRLF at or past stop is not seen: each cut of the buffer is incomplete.
    buf = bytearray(GET + GET)
    for stop in range(len(GET)):
        assert C.scan_request(buf, 0, stop, *LIMITS) is None
    assert C.scan_request(buf, 0, len(GET), *LIMITS)[0] == len(GET)
    for start in range(1, len(GET)):
        found = C.scan_request(buf, start, len(buf), *LIMITS)
        assert found is None or found[0] == 2 * len(GET)
    assert C.scan_request(buf, len(GET), len(buf), *LIMITS)[0] == 2 * len(GET)
    assert C.scan_request(buf, len(buf), len(buf), *LIMITS) is None


def test_any_buffer():
    for buf in (GET, bytearray(GET), memoryview(GET), memoryview(bytearray(GET))):
        assert C.scan_request(buf, 0, len(GET), *LIMITS)[0] == len(GET)


def test_buffer_held_while_scanning():
    # The scan holds the buffer: a bytearray cannot be resized under it (here,
    # nothing runs meanwhile; afterwards it can be).
    buf = bytearray(GET)
    C.scan_request(buf, 0, len(buf), *LIMITS)
    buf.extend(b'more')


# --------------------------------------------------------------------------
# Random, valid and mutated preambles


@st.composite
def request_wires(draw):
    line = draw(st.sampled_from(REQUEST_LINES))
    fields = draw(st.lists(st.sampled_from(HEADER_LINES), max_size=6))
    if draw(st.booleans()):
        fields = [field.swapcase() if draw(st.booleans()) else field for field in fields]
    return b'\r\n'.join([line] + fields) + b'\r\n\r\n' + draw(st.sampled_from(
        [b'', b'hello', b'5\r\nhello\r\n0\r\n\r\n', b'GET / HTTP/1.1\r\n\r\n']))


@st.composite
def response_wires(draw):
    line = draw(st.sampled_from(STATUS_LINES))
    fields = draw(st.lists(st.sampled_from(HEADER_LINES), max_size=6))
    return b'\r\n'.join([line] + fields) + b'\r\n\r\n' + draw(st.sampled_from(
        [b'', b'hello', b'5\r\nhello\r\n0\r\n\r\n']))


cuts = st.lists(st.integers(min_value=1, max_value=400), max_size=2)
sizes = st.sampled_from([None, 16, 64])


def cut(wire, at):
    points = sorted({a for a in at if a < len(wire)})
    return [wire[a:b] for (a, b) in zip([0] + points, points + [len(wire)])]


@DIFF
@given(request_wires(), cuts, sizes, st.sampled_from([(), (200,), (8192, 3), (8192, 100, 4)]))
def test_valid_requests(wire, at, size, args):
    compare_read(C, cut(wire, at), None, args, size)


@DIFF
@given(request_wires(), st.randoms(use_true_random=False), cuts, sizes)
def test_mutated_requests(wire, rng, at, size):
    wire = mutate(rng, wire, 400)
    compare_read(C, cut(wire, at), None, (), size)


@DIFF
@given(st.binary(max_size=200), st.booleans(), cuts)
def test_random_requests(data, end, at):
    wire = data + b'\r\n\r\n' if end else data
    compare_read(C, cut(wire, at))
    compare_read(C, cut(b'GET / HTTP/1.1\r\n' + wire, at))


@DIFF
@given(response_wires(), st.sampled_from(['GET', 'HEAD', 'POST']), cuts, sizes)
def test_valid_responses(wire, method, at, size):
    compare_read(C, cut(wire, at), method, (), size)


@DIFF
@given(response_wires(), st.randoms(use_true_random=False), st.sampled_from(['GET', 'HEAD']),
       cuts)
def test_mutated_responses(wire, rng, method, at):
    wire = mutate(rng, wire, 400)
    compare_read(C, cut(wire, at), method)


@DIFF
@given(st.binary(max_size=200), st.booleans(), cuts)
def test_random_responses(data, end, at):
    wire = data + b'\r\n\r\n' if end else data
    compare_read(C, cut(wire, at), 'GET')
    compare_read(C, cut(b'HTTP/1.1 200 OK\r\n' + wire, at), 'GET')


def test_fuzz_cases():
    # tests/fuzz_core.py's generator, a fixed seed.
    rng = random.Random(1)
    for _ in range(300):
        for (chunks, method, args, size) in read_cases(rng):
            compare_read(C, chunks, method, args, size)


@pytest.mark.parametrize('method', [None, 'GET'])
@pytest.mark.parametrize('wire', [b'', b'GET / HTTP/1.1\r\n', b'HTTP/1.1 200 OK\r\n'])
def test_timeouts_over_a_socketpair(method, wire):
    # The first byte waits idle_timeout, the rest of the preamble timeout: the
    # peer stays connected and sends nothing more.
    sockets = []

    def make():
        (a, b) = socket.socketpair()
        sockets.extend((a, b))
        b.sendall(wire)
        return Transport(a, timeout=0.2, idle_timeout=0.05)

    try:
        (expected, got) = both_ways(C, make, method)
    finally:
        for sock in sockets:
            sock.close()
    assert got == expected
    assert expected[:2] == ('error', _parse.ConnectionTimedOut)


def test_memo_many_sources():
    # More lines and blocks than the memo has slots, each twice: every
    # answer the one its source gives, whatever it replaced.
    wires = [b'GET /%d?q=%d HTTP/1.1\r\nX-N: %d\r\n\r\n' % (i, i * 7, i) for i in range(700)]
    for wire in wires + wires[::-1]:
        (_, _, _, request) = C.scan_request(bytearray(wire), 0, len(wire), *LIMITS)
        n = int(request.headers['x-n'])
        assert (request.path, request.query) == ([str(n)], f'q={n * 7}')
        assert wire.startswith(b'GET /%d?' % n)
    statuses = [b'HTTP/1.1 %d R%d\r\nX-N: %d\r\n\r\n' % (200 + i % 300, i, i) for i in range(700)]
    for wire in statuses + statuses[::-1]:
        found = C.scan_response(bytearray(wire), 0, len(wire), *LIMITS, 'GET')
        n = int(found[6]['x-n'])
        assert found[4:6] == (200 + n % 300, f'R{n}')
        same(wire, 'GET')


def test_memo_and_max_header_count():
    # A block seen with a high limit is still refused over a lower one.
    wire = b'GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n'
    for count in (100, 3, 2, 0, 3):
        found = C.scan_request(bytearray(wire), 0, len(wire), 8192, count)
        assert (found is not None) == (count >= 3)
        same(wire, args=(8192, count))


def test_memo_keeps_refusals():
    # Refused once, refused again the same way; a block refused under a low
    # max_header_count is taken under a higher one.
    ranged = b'GET /r HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n'
    absolute = b'GET http://x/r HTTP/1.1\r\nHost: x\r\n\r\n'
    status = b'HTTP/1.1 600 Nope\r\n\r\n'
    for _ in range(3):
        assert C.scan_request(bytearray(ranged), 0, len(ranged), *LIMITS) is None
        assert C.scan_request(bytearray(absolute), 0, len(absolute), *LIMITS) is None
        assert C.scan_response(bytearray(status), 0, len(status), *LIMITS, 'GET') is None
        same(ranged)
        same(absolute)
        same(status, 'GET')
    wire = b'GET / HTTP/1.1\r\nD: 1\r\nE: 2\r\nF: 3\r\n\r\n'
    for (count, taken) in [(2, False), (2, False), (1, False), (3, True), (0, False), (9, True)]:
        found = C.scan_request(bytearray(wire), 0, len(wire), 8192, count)
        assert (found is not None) == taken, count
        same(wire, args=(8192, count))
