"""The server's response head in one C call: ``degu._cparse.response_head()``.

``Server._serve()`` hands the app's response to ``response_head(response,
method, connection, date)`` first; for anything but the common response it
returns None, and the checked path (``_check_response()``, then
``Server._response_head()`` and ``write_message()``) answers as before.  These
tests hold it to that path:

* tables: the exact bytes of the common responses, and None for every other
  kind, with what the checked path then sends or raises;
* the request loop itself, run over a fake socket with and without the
  shortcut (``degu.server.response_head`` set to None, as on the
  pure-Python core): the same bytes on the wire, the same close reason, the
  same logged exception and access-log entry, for tables and for random
  valid and invalid responses (hypothesis);
* a live server, byte for byte, over a raw socket.
"""

import logging
import os
import random
import re

import pytest
from fuzz_core import (
    BUF_LEN,
    DATE,
    _Int,
    _Str,
    _Tuple,
    compare_head,
    head_case,
    head_reference,
)
from helpers import C_CORE, DIFF, FakeSocket, exchange, memory_growth, need_c
from hypothesis import given
from hypothesis import strategies as st

from degu import _parse, server
from degu.base import MAX_IO_SIZE, BodyIter, ChunkedBodyIter, Session
from degu.misc import TempServer

C = C_CORE

CLOSE = '\r\nconnection: close'
KEEP = '\r\nconnection: keep-alive'
WHEN = 784111777.0  # the date of every response below
DATE_LINE = b'\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT'
assert DATE == DATE_LINE.decode()


def test_selection():
    # Bound on the C core only: the pure-Python core has no shortcut.
    if _parse.CORE == 'c':
        assert _parse.response_head is C.response_head
    else:
        assert _parse.response_head is None
    assert server.response_head is _parse.response_head


@need_c
def test_join_limit_is_buf_len():
    assert BUF_LEN == _parse.BUF_LEN
    head = C.response_head((200, 'OK', {}, b'x' * BUF_LEN), 'GET', '', DATE)
    assert head.endswith(b'\r\n\r\n' + b'x' * BUF_LEN)
    head = C.response_head((200, 'OK', {}, b'x' * (BUF_LEN + 1)), 'GET', '', DATE)
    assert head == f'HTTP/1.1 200 OK\r\ncontent-length: {BUF_LEN + 1}{DATE}\r\n\r\n'.encode()


# --------------------------------------------------------------------------
# Tables: the common responses, byte for byte

H = {'content-type': 'text/plain'}
COMMON = [
    # (response, method, connection) -> exact bytes (date is DATE)
    ((200, 'OK', {}, b'hello'), 'GET', '',
     b'HTTP/1.1 200 OK\r\ncontent-length: 5' + DATE_LINE + b'\r\n\r\nhello'),
    ((200, 'OK', H, b'Hello, World'), 'GET', '',
     b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12' + DATE_LINE
     + b'\r\n\r\nHello, World'),
    ((404, 'Not Found', {}, None), 'GET', '',
     b'HTTP/1.1 404 Not Found\r\ncontent-length: 0' + DATE_LINE + b'\r\n\r\n'),
    ((201, 'Created', {'location': '/a'}, b''), 'POST', '',
     b'HTTP/1.1 201 Created\r\nlocation: /a\r\ncontent-length: 0' + DATE_LINE + b'\r\n\r\n'),
    # The server's connection line, after the length and before the date.
    ((200, 'OK', {}, b'x'), 'PUT', CLOSE,
     b'HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close' + DATE_LINE
     + b'\r\n\r\nx'),
    ((200, 'OK', {}, b'x'), 'GET', KEEP,  # an HTTP/1.0 request kept alive
     b'HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: keep-alive' + DATE_LINE
     + b'\r\n\r\nx'),
    # The app's date: its own, with the others sorted by name (RFC 9110 6.6.1).
    ((200, 'OK', {'date': 'x', 'a': 1, 'z': 'y'}, b'x'), 'DELETE', CLOSE,
     b'HTTP/1.1 200 OK\r\na: 1\r\ndate: x\r\nz: y\r\ncontent-length: 1\r\nconnection: close'
     b'\r\n\r\nx'),
    # Values: int, list (one line each), latin-1 text, an HTAB inside.
    ((599, 'caf\xe9', {'set-cookie': ['a=1', 'b=2'], 'x-n': -3, 'x-t': 'a\tb'}, None),
     'OPTIONS', '',
     b'HTTP/1.1 599 caf\xe9\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-n: -3\r\nx-t: a\tb'
     b'\r\ncontent-length: 0' + DATE_LINE + b'\r\n\r\n'),
    ((299, 'X', {'content-type': 'a', 'etag': '"1"'}, b'y' * 3), 'PATCH', '',
     b'HTTP/1.1 299 X\r\ncontent-type: a\r\netag: "1"\r\ncontent-length: 3' + DATE_LINE
     + b'\r\n\r\nyyy'),
]


@need_c
@pytest.mark.parametrize(('response', 'method', 'connection', 'expected'), COMMON)
def test_common_response(response, method, connection, expected):
    assert C.response_head(response, method, connection, DATE) == expected
    assert head_reference(response, method, connection, DATE) == expected


def made(response):
    # A body object is used up by the first response: a table keeps a
    # function that makes a fresh one.
    return response() if callable(response) else response


# Left to the checked path: response_head() says None, and the server then
# raises (the exact message) or sends what it always sent.
TE = 'transfer-encoding'
FALLBACK = [
    # (response, method) -> the checked path's exception, or its preamble
    ((200, 'OK', {}, None), 'HEAD',
     b'HTTP/1.1 200 OK' + DATE_LINE + b'\r\n\r\n'),
    ((200, 'OK', {'content-length': 7}, None), 'HEAD',
     b'HTTP/1.1 200 OK\r\ncontent-length: 7' + DATE_LINE + b'\r\n\r\n'),
    ((200, 'OK', {}, b'x'), 'HEAD',
     (TypeError, "request method is HEAD, but response body is not None: <class 'bytes'>")),
    ((204, 'No Content', {}, None), 'GET',
     b'HTTP/1.1 204 No Content' + DATE_LINE + b'\r\n\r\n'),
    ((204, 'No Content', {'content-length': 0}, None), 'GET',
     b'HTTP/1.1 204 No Content' + DATE_LINE + b'\r\n\r\n'),
    ((204, 'No Content', {}, b''), 'GET',
     (TypeError, "response status is 204, but response body is not None: <class 'bytes'>")),
    ((304, 'Not Modified', {'etag': '"a"'}, None), 'GET',
     b'HTTP/1.1 304 Not Modified\r\netag: "a"' + DATE_LINE + b'\r\n\r\n'),
    ((304, 'Not Modified', {}, b'x'), 'GET',
     (TypeError, "response status is 304, but response body is not None: <class 'bytes'>")),
    # The app's framing and connection fields.
    ((200, 'OK', {'content-length': 5}, b'hello'), 'GET',
     b'HTTP/1.1 200 OK\r\ncontent-length: 5' + DATE_LINE + b'\r\n\r\n'),
    ((200, 'OK', {'content-length': '5'}, b'hello'), 'GET',
     b'HTTP/1.1 200 OK\r\ncontent-length: 5' + DATE_LINE + b'\r\n\r\n'),
    ((200, 'OK', {'content-length': 4}, b'hello'), 'GET',
     (ValueError, "'content-length' mismatch: 5 != 4")),
    ((200, 'OK', {'content-length': 3}, None), 'GET',
     (ValueError, 'response body is None but content-length is 3')),
    ((200, 'OK', {TE: 'chunked'}, b'x'), 'GET',
     (ValueError, 'cannot have both content-length and transfer-encoding headers')),
    ((200, 'OK', {'content-length': 1, TE: 'chunked'}, b'x'), 'GET',
     (ValueError, 'cannot have both content-length and transfer-encoding headers')),
    ((200, 'OK', {'connection': 'close'}, b'x'), 'GET',
     b'HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close' + DATE_LINE + b'\r\n\r\n'),
    ((200, 'OK', {'connection': 'keep-alive', 'a': 'b'}, b'x'), 'GET',
     b'HTTP/1.1 200 OK\r\na: b\r\ncontent-length: 1' + DATE_LINE + b'\r\n\r\n'),
    ((200, 'OK', {_Str('connection'): 'close'}, b'x'), 'GET',
     b'HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close' + DATE_LINE + b'\r\n\r\n'),
    # Bodies that are not bytes or None.
    ((200, 'OK', {}, bytearray(b'ab')), 'GET', (TypeError, "bad body type: <class 'bytearray'>"
                                                ": bytearray(b'ab')")),
    ((200, 'OK', {}, 'text'), 'GET', (TypeError, "bad body type: <class 'str'>: 'text'")),
    (lambda: (200, 'OK', {}, BodyIter([b'ab'], 2)), 'GET',
     b'HTTP/1.1 200 OK\r\ncontent-length: 2' + DATE_LINE + b'\r\n\r\n'),
    (lambda: (200, 'OK', {}, ChunkedBodyIter([(None, b'ab'), (None, b'')])), 'GET',
     b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked' + DATE_LINE + b'\r\n\r\n'),
    # Bad tuples and statuses.
    ([200, 'OK', {}, b'x'], 'GET', (TypeError, "response: need a <class 'tuple'>; got a "
                                    "<class 'list'>")),
    ((200, 'OK', {}), 'GET', (ValueError, 'response: need a 4-tuple; got a 3-tuple')),
    ((200, 'OK', {}, b'', None), 'GET', (ValueError, 'response: need a 4-tuple; got a 5-tuple')),
    (_Tuple((200, 'OK', {}, b'x')), 'GET',
     b'HTTP/1.1 200 OK\r\ncontent-length: 1' + DATE_LINE + b'\r\n\r\n'),
    ((True, 'OK', {}, b''), 'GET', (TypeError, "status: need a <class 'int'>; got a "
                                    "<class 'bool'>: True")),
    ((_Int(200), 'OK', {}, b''), 'GET', (TypeError, "status: need a <class 'int'>; got a "
                                         "<class 'fuzz_core._Int'>: 200")),
    ((200.0, 'OK', {}, b''), 'GET', (TypeError, "status: need a <class 'int'>; got a "
                                     "<class 'float'>: 200.0")),
    ((101, 'Switching', {}, None), 'GET',
     (ValueError, 'need a final status (200 <= status <= 599); got 101')),
    ((600, 'X', {}, None), 'GET', (ValueError, 'need 100 <= status <= 599; got 600')),
    ((2 ** 70, 'X', {}, None), 'GET',
     (ValueError, f'need 100 <= status <= 599; got {2 ** 70}')),
    ((200, 'OK', [('a', 'b')], b''), 'GET',
     (TypeError, "headers: need a <class 'dict'>; got a <class 'list'>: [('a', 'b')]")),
    # Reasons and fields the renderer refuses (header injection) or checks in Python.
    ((200, 'OK\r\nx: y', {}, b''), 'GET', (ValueError, "bad reason: 'OK\\r\\nx: y'")),
    ((200, '', {}, b''), 'GET', (ValueError, "bad reason: ''")),
    ((200, None, {}, b''), 'GET',
     (TypeError, "reason: need a <class 'str'>; got a <class 'NoneType'>: None")),
    ((200, '\u20ac', {}, b''), 'GET', (ValueError, "reason: not latin-1: '\u20ac'")),
    ((200, _Str('OK'), {}, b''), 'GET',
     (TypeError, "reason: need a <class 'str'>; got a <class 'fuzz_core._Str'>: 'OK'")),
    ((200, 'OK', {'x': 'a\r\nb: c'}, b''), 'GET',
     (ValueError, "bad header value: 'x': 'a\\r\\nb: c'")),
    ((200, 'OK', {'X-Up': 'a'}, b''), 'GET', (ValueError, "bad header name: 'X-Up'")),
    ((200, 'OK', {'x': 10 ** 5000}, b''), 'GET',
     (ValueError, 'Exceeds the limit (4300 digits) for integer string conversion; use '
                  'sys.set_int_max_str_digits() to increase the limit')),
    ((200, 'OK', {_Str('x-sub'): 'only here'}, b''), 'GET',
     (TypeError, "header name: need a <class 'str'>; got a <class 'fuzz_core._Str'>: 'x-sub'")),
    ((200, 'OK', {'x': 2.5}, b''), 'GET',
     b'HTTP/1.1 200 OK\r\nx: 2.5\r\ncontent-length: 0' + DATE_LINE + b'\r\n\r\n'),
]


@need_c
@pytest.mark.parametrize(('response', 'method', 'expected'), FALLBACK)
def test_left_to_the_checked_path(response, method, expected):
    response = made(response)
    assert C.response_head(response, method, '', DATE) is None
    if type(expected) is bytes:  # the preamble, then a bytes body
        body = response[3] if type(response[3]) is bytes else b''
        assert head_reference(response, method, '', DATE) == expected + body
    else:
        (kind, message) = expected
        with pytest.raises(kind) as info:
            head_reference(response, method, '', DATE)
        assert str(info.value) == message


@need_c
def test_other_arguments_are_left_to_the_caller():
    response = (200, 'OK', {}, b'')
    assert C.response_head(response, 'GET', '', DATE) is not None
    for args in [(response, 'GET', ''), (response, 'GET', '', DATE, None),
                 (response, b'GET', '', DATE), (response, 'GET', None, DATE),
                 (response, 'GET', '', '\u20ac'), (response, _Str('HEAD'), '', DATE)]:
        assert C.response_head(*args) is None, args
    assert C.response_head(response, 'GET', '', date=DATE) is None
    big = b'x' * (MAX_IO_SIZE + 1)
    assert C.response_head((200, 'OK', {}, big), 'GET', '', DATE) is None
    with pytest.raises(ValueError, match=f'^need len\\(body\\) <= {MAX_IO_SIZE}; got '):
        head_reference((200, 'OK', {}, big), 'GET', '', DATE)


@need_c
def test_hostile_values_run_no_python_code():
    # A value whose str() is Python code, here one that changes the dict:
    # the checked path runs it, once, and says what it says.
    class Sneaky:
        def __init__(self, headers):
            self.headers = headers
            self.calls = 0

        def __str__(self):
            self.calls += 1
            self.headers['z'] = 'late'
            return 'v'

    headers = {'a': 'b'}
    headers['x'] = sneaky = Sneaky(headers)
    assert C.response_head((200, 'OK', headers, b''), 'GET', '', DATE) is None
    assert sneaky.calls == 0 and list(headers) == ['a', 'x']
    assert head_reference((200, 'OK', headers, b''), 'GET', '', DATE) == (
        b'HTTP/1.1 200 OK\r\na: b\r\nx: v\r\ncontent-length: 0' + DATE_LINE + b'\r\n\r\n'
    )
    assert sneaky.calls == 1 and list(headers) == ['a', 'x', 'z']

    class Key(str):
        def __eq__(self, other):
            raise AssertionError('ran')

        __hash__ = str.__hash__

    headers = {Key('connection'): 'close', 'a': 'b'}
    assert C.response_head((200, 'OK', headers, b''), 'GET', '', DATE) is None


@need_c
def test_no_leak_in_a_loop():
    # Every path of response_head() (bytes, or None from each of its
    # checks), thousands of times, leaves no object behind.
    rng = random.Random(11)
    inputs = [head_case(rng) for _ in range(2000)]

    def burst():
        for args in inputs:
            C.response_head(*args)

    growth = memory_growth(burst)
    assert growth < 10_000, growth


@need_c
@DIFF
@given(st.randoms(use_true_random=False))
def test_differential_head(rng):
    # Random valid and invalid responses: whenever C answers, the checked
    # path gives the same bytes.
    compare_head(C, head_case(rng))


# --------------------------------------------------------------------------
# The request loop, with and without the shortcut


class Caught(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


class Wire(FakeSocket):
    # What the server's error answers use too.
    def sendall(self, data):
        self.sent += data


def serve(responses, requests, fast, *, max_requests=100, access=False, stopping=False,
          n=1 << 20):
    """Serve *requests* (raw bytes) answering *responses* in turn, over a FakeSocket.

    Returns what can be compared between the two paths: the bytes sent,
    the session's close reason and request count, and the exceptions and
    access entries logged.
    """
    from degu._transport import START_BUF_LEN, Transport

    queue = list(responses)

    def linger(transport):  # no peer to drain: close
        transport.close()

    def app(session, request, api):
        srv._stopping = stopping  # shutdown() while the app ran
        if request.body is not None:
            request.body.read()
        return made(queue.pop(0))

    srv = server.Server(b'', app, max_requests=max_requests, timeout=15, idle_timeout=15)
    caught = Caught()
    loggers = [logging.getLogger('degu.server'), logging.getLogger('degu.access')]
    saved = (server.response_head, server._time, server._date_field, server._date_until,
             server._linger, [(lg.level, lg.propagate) for lg in loggers])
    try:
        server.response_head = C.response_head if fast else None
        server._linger = linger
        (server._time, server._date_until) = (lambda: WHEN, 0.0)
        for lg in loggers:
            lg.addHandler(caught)
            lg.propagate = False
        loggers[1].setLevel(logging.INFO if access else logging.WARNING)
        loggers[0].setLevel(logging.ERROR)
        sock = Wire(b''.join(requests), n)
        session = Session(('127.0.0.1', 1234), None, max_requests)
        failures = []
        transport = Transport(sock, timeout=15, idle_timeout=15, on_failure=failures.append,
                              buffer_size=START_BUF_LEN)
        srv._handle_requests(server._Connection(sock), session, transport, failures)
    finally:
        (server.response_head, server._time, server._date_field, server._date_until,
         server._linger, levels) = saved
        for (lg, (level, propagate)) in zip(loggers, levels):
            lg.removeHandler(caught)
            lg.setLevel(level)
            lg.propagate = propagate
        srv.sock.close()
    logged = []
    for record in caught.records:
        if record.exc_info:
            exc = record.exc_info[1]
            logged.append((type(exc), re.sub(' at 0x[0-9a-f]+', ' at 0x', str(exc))))
        elif record.name == 'degu.access':
            e = record.msg
            logged.append((e.request_line, e.status, e.bytes, e.connection))
    return (bytes(sock.sent), session.message, session.requests, logged, queue)


def same_both_ways(responses, requests, **options):
    fast = serve(responses, requests, True, **options)
    slow = serve(responses, requests, False, **options)
    fast = fast[:4] + (len(fast[4]),)  # what the app did not answer: how many
    slow = slow[:4] + (len(slow[4]),)
    assert fast == slow
    return fast


GET = b'GET /a HTTP/1.1\r\nhost: x\r\n\r\n'
GET10 = b'GET /a HTTP/1.0\r\n\r\n'
GET10_KEEP = b'GET /a HTTP/1.0\r\nconnection: keep-alive\r\n\r\n'
GET_CLOSE = b'GET /a HTTP/1.1\r\nconnection: close\r\nhost: x\r\n\r\n'
HEAD = b'HEAD /a HTTP/1.1\r\nhost: x\r\n\r\n'
POST = b'POST /a HTTP/1.1\r\ncontent-length: 3\r\nhost: x\r\n\r\nabc'
REQUESTS = [GET, GET10, GET10_KEEP, GET_CLOSE, HEAD, POST]
OK = (200, 'OK', {'content-type': 'text/plain'}, b'Hello, World')
WIRE_OK = (b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12' + DATE_LINE
           + b'\r\n\r\nHello, World')


@need_c
@pytest.mark.parametrize('access', [False, True])
def test_loop_common(access):
    (wire, _, count, logged, _) = same_both_ways([OK] * 3, [GET] * 3, access=access)
    assert wire == WIRE_OK * 3
    assert count == 3
    if access:
        assert logged == [(('GET', '/a', 'HTTP/1.1'), 200, 12, '+')] * 3


@need_c
@pytest.mark.parametrize(
    ('request_', 'options', 'connection', 'message'),
    [
        (GET10, {}, b'\r\nconnection: close', 'HTTP/1.0'),
        (GET10_KEEP, {}, b'\r\nconnection: keep-alive', None),
        (GET_CLOSE, {}, b'\r\nconnection: close', 'connection: close'),
        (GET, {'stopping': True}, b'\r\nconnection: close', 'shutdown'),
        (GET, {'max_requests': 1}, b'\r\nconnection: close', 'max_requests'),
        (POST, {}, b'', None),
    ],
)
def test_loop_connection(request_, options, connection, message):
    (wire, got, count, _, _) = same_both_ways([OK], [request_], **options)
    assert wire == (b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12'
                    + connection + DATE_LINE + b'\r\n\r\nHello, World')
    assert count == 1
    if message is not None:
        assert got == message


@need_c
@pytest.mark.parametrize(('response', 'method', 'expected'), FALLBACK)
def test_loop_fallbacks(response, method, expected):
    request_ = GET.replace(b'GET', method.encode(), 1)
    (wire, message, count, logged, _) = same_both_ways([response], [request_])
    if type(expected) is bytes:
        assert wire.startswith(expected)
        assert count == 1
    else:
        assert logged == [expected]
        assert wire.startswith(b'HTTP/1.1 500 Internal Server Error\r\n')
        assert message == '500 Internal Server Error'


@need_c
@pytest.mark.parametrize('size', [0, 1, BUF_LEN, BUF_LEN + 1, 3 * BUF_LEN])
@pytest.mark.parametrize('n', [1 << 20, 7000])
def test_loop_body_sizes(size, n):
    body = os.urandom(size)
    (wire, _, count, logged, _) = same_both_ways(
        [(200, 'OK', {}, body)] * 2, [GET] * 2, access=True, n=n
    )
    one = f'HTTP/1.1 200 OK\r\ncontent-length: {size}'.encode() + DATE_LINE + b'\r\n\r\n' + body
    assert wire == one * 2 and count == 2
    assert [entry[2] for entry in logged] == [size, size]


@need_c
@pytest.mark.parametrize(('limit', 'expected'), [(0, b''), (10, WIRE_OK[:10])])
def test_loop_send_fails(limit, expected):
    # A peer gone before the response, or during it: the same on both paths.
    from degu._transport import START_BUF_LEN, Transport

    outcome = []
    for fast in (True, False):
        srv = server.Server(b'', lambda s, r, a: OK, timeout=15, idle_timeout=15)
        saved = (server.response_head, server._time, server._date_until)
        (server.response_head, server._time, server._date_until) = (
            C.response_head if fast else None, lambda: WHEN, 0.0)
        try:
            sock = FakeSocket(GET, send_limit=limit, send_error=ConnectionResetError(104, 'x'))
            session = Session(('127.0.0.1', 1234), None, 10)
            transport = Transport(sock, timeout=15, idle_timeout=15, on_failure=None,
                                  buffer_size=START_BUF_LEN)
            with pytest.raises(ConnectionError) as info:
                srv._handle_requests(server._Connection(sock), session, transport, [])
        finally:
            (server.response_head, server._time, server._date_until) = saved
            srv.sock.close()
        outcome.append((bytes(sock.sent), session.requests, type(info.value), str(info.value)))
    assert outcome[0] == outcome[1]
    assert outcome[0][:2] == (expected, 0)


@need_c
@DIFF
@given(st.randoms(use_true_random=False))
def test_differential_loop(rng):
    # Random valid and invalid responses to random requests, three on one
    # connection: the same bytes, close reason, exceptions and access log.
    seed = rng.randrange(2 ** 32)
    cases = [head_case(random.Random(seed + i)) for i in range(3)]
    # Made anew for each run: a body object is used up by the first.
    responses = [lambda i=i: head_case(random.Random(seed + i))[0] for i in range(3)]
    requests = [GET.replace(b'GET', method.encode(), 1) if rng.random() < 0.7
                else rng.choice(REQUESTS) for (_, method, _, _) in cases]
    same_both_ways(responses, requests, access=rng.random() < 0.3,
                   max_requests=rng.choice((2, 100)), n=rng.choice((1 << 20, 100)))


# --------------------------------------------------------------------------
# A live server, byte for byte


def common_app(session, request, api):
    return OK


@pytest.mark.parametrize('version', [b'HTTP/1.1', b'HTTP/1.0'])
def test_live_wire_bytes(version):
    with TempServer(('127.0.0.1', 0), common_app, thread=True) as srv:
        data = exchange(srv.address, b'GET / ' + version + b'\r\nhost: x\r\n\r\n')
    date = rb'\r\ndate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT'
    connection = b'\r\nconnection: close' if version == b'HTTP/1.0' else b''
    pattern = (re.escape(b'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12'
                         + connection) + date + re.escape(b'\r\n\r\nHello, World'))
    assert re.fullmatch(pattern, data), data
