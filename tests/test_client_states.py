"""The states of a degu.client ``Connection`` and their transitions, and
``ConnectionClosed.response_started``.

The transition table is in the docstring of degu.client.  Each transition is
driven here over a ``FakeSocket`` (exact bytes, every ``close()`` counted),
over a ``socketpair()`` where ``Expect: 100-continue`` needs a real file
descriptor to wait on, and against live degu servers (``TempServer``).
"""

import socket
import threading

import pytest
from helpers import MOVE_SIZES, FakeSocket

from degu.base import (
    ConnectionClosed,
    ConnectionTimedOut,
    EmptyPreambleError,
    UnsupportedResponse,
)
from degu.client import Client, Connection, _State
from degu.misc import TempServer

TIMEOUT = 5  # seconds: every socket a test makes

OPEN = _State.OPEN
SEND_CLOSED = _State.SEND_CLOSED
CLOSING = _State.CLOSING
CLOSED = _State.CLOSED

OK = b'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'
CLOSE_HI = b'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi'
EARLY_413 = b'HTTP/1.1 413 Content Too Large\r\ncontent-length: 3\r\n\r\nbig'
RESET = ConnectionResetError(104, 'Connection reset by peer')


def fake(data=b'', **kw):
    sock = FakeSocket(data, **kw)
    return (Connection(sock, None), sock)


def send_closed(data=b''):
    """A connection whose upload failed with a reset: SEND_CLOSED; *data* still to read."""
    (conn, sock) = fake(data, send_error=RESET, send_limit=10)
    with pytest.raises(ConnectionClosed) as e:
        conn.send_request('PUT', '/up', {}, b'x' * 100)
    assert e.value.unanswered == (('PUT', '/up'),)
    assert e.value.response_started is False
    assert conn._state is SEND_CLOSED
    return (conn, sock)


def closing():
    """A connection whose response said ``connection: close``; its body unread: CLOSING."""
    (conn, sock) = fake(CLOSE_HI)
    r = conn.get('/', {})
    assert conn._state is CLOSING and not conn.closed
    return (conn, sock, r)


def pair(**kw):
    (a, b) = socket.socketpair()
    a.settimeout(TIMEOUT)
    b.settimeout(TIMEOUT)
    return (Connection(a, None, **kw), b)


# --------------------------------------------------------------------------
# Each transition, from a fresh Connection over a FakeSocket
#
# (id, wire bytes, what the test does, state after, closed after, socket
# closes after).  Every row starts OPEN.


def _get(conn):
    return conn.get('/', {})


def _get_read(conn):
    return conn.get('/', {}).body.read()


def _head(conn):
    return conn.head('/', {})


FROM_OPEN = [
    ('keep-alive', OK, _get_read, OPEN, False, 0),
    ('connection: close', CLOSE_HI, _get, CLOSING, False, 0),
    ('HTTP/1.0', b'HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nhi', _get, CLOSING, False, 0),
    ('HTTP/1.0 keep-alive',
     b'HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nhi',
     _get_read, OPEN, False, 0),
    ('body runs until the close', b'HTTP/1.1 200 OK\r\n\r\nuntil EOF', _get, CLOSING, False, 0),
    ('close, no body: at once', b'HTTP/1.1 200 OK\r\nconnection: close\r\n'
     b'content-length: 5\r\n\r\n', _head, CLOSED, True, 1),
    ('close, empty body: at once', b'HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n',
     _get, CLOSED, True, 1),
    ('close, content-length: 0', b'HTTP/1.1 200 OK\r\nconnection: close\r\n'
     b'content-length: 0\r\n\r\n', _get, CLOSED, True, 1),
]


@pytest.mark.parametrize(
    ('data', 'action', 'state', 'closed', 'closes'),
    [row[1:] for row in FROM_OPEN],
    ids=[row[0] for row in FROM_OPEN],
)
def test_transitions_from_open(data, action, state, closed, closes):
    (conn, sock) = fake(data)
    assert conn._state is OPEN and conn.closed is False
    action(conn)
    assert conn._state is state
    assert conn.closed is closed
    assert sock.close_count == closes


# Errors: any -> CLOSED, the socket closed at once.  (id, wire bytes, FakeSocket
# keywords, exception type)
ERRORS = [
    ('server closed', b'', {}, EmptyPreambleError),
    ('reset', b'', {'recv_error': RESET}, ConnectionClosed),
    ('timeout', b'', {'recv_error': TimeoutError('timed out')}, ConnectionTimedOut),
    ('truncated preamble', b'HTTP/1.1 200 OK\r\n', {}, ConnectionClosed),
    ('malformed response', b'HTTP/1.1 200 OK\r\nbad header\r\n\r\n', {}, ValueError),
    ('101', b'HTTP/1.1 101 Switching Protocols\r\n\r\n', {}, UnsupportedResponse),
    ('too many interim', b'HTTP/1.1 103 Early Hints\r\n\r\n' * 17 + OK, {}, ValueError),
    ('send reset', b'', {'send_error': RESET, 'send_limit': 0}, ConnectionClosed),
]


@pytest.mark.parametrize(
    ('data', 'kw', 'exc'), [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS]
)
def test_open_to_closed_on_error(data, kw, exc):
    (conn, sock) = fake(data, **kw)
    with pytest.raises(exc):
        conn.get('/', {})
    assert conn._state is CLOSED and conn.closed
    assert sock.close_count == 1


def test_open_to_closed_on_bad_arguments():
    (conn, sock) = fake()
    with pytest.raises(ValueError):
        conn.request('BREW', '/', {}, None)
    assert conn._state is CLOSED and sock.close_count == 1


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_open_to_send_closed(n):
    (conn, sock) = fake(b'', n=n, send_error=BrokenPipeError(32, 'Broken pipe'), send_limit=10)
    with pytest.raises(ConnectionClosed) as e:
        conn.send_request('PUT', '/up', {}, b'x' * 100)
    assert isinstance(e.value.__cause__, BrokenPipeError)
    assert conn._state is SEND_CLOSED
    assert conn.closed is False and sock.close_count == 0
    # Nothing more goes out; the state stays.
    with pytest.raises(ConnectionClosed) as e:
        conn.send_request('GET', '/', {}, None)
    assert str(e.value) == 'Connection is closed for sending'
    assert e.value.unanswered == (('PUT', '/up'),)
    assert conn._state is SEND_CLOSED and sock.close_count == 0


def test_timeout_while_sending_is_closed_not_send_closed():
    (conn, sock) = fake(b'', send_error=TimeoutError('timed out'), send_limit=10)
    with pytest.raises(ConnectionTimedOut):
        conn.send_request('PUT', '/up', {}, b'x' * 100)
    assert conn._state is CLOSED and sock.close_count == 1


@pytest.mark.parametrize(
    ('data', 'reason'),
    [
        (EARLY_413, 'the server closed it during the upload'),
        (
            b'HTTP/1.1 413 Content Too Large\r\nconnection: close\r\n'
            b'content-length: 3\r\n\r\nbig',
            'the server sent connection: close',
        ),
    ],
)
def test_send_closed_to_closing(data, reason):
    (conn, sock) = send_closed(data)
    r = conn.read_response()
    assert r.status == 413
    assert conn._state is CLOSING and not conn.closed
    assert r.body.read() == b'big'
    assert conn.closed and sock.close_count == 0  # closed only looks
    with pytest.raises(ConnectionClosed) as e:
        conn.get('/', {})
    assert str(e.value) == f'Connection is closed: {reason}'
    assert conn._state is CLOSED and sock.close_count == 1


def test_send_closed_to_closed_when_nothing_to_read():
    (conn, sock) = send_closed()
    with pytest.raises(EmptyPreambleError) as e:
        conn.read_response()
    assert e.value.unanswered == (('PUT', '/up'),)
    assert conn._state is CLOSED and sock.close_count == 1


def test_send_closed_to_closed_through_request():
    # request() reads what the server answered; with nothing, it raises the
    # send's error and closes.
    (conn, sock) = fake(b'', send_error=RESET, send_limit=10)
    with pytest.raises(ConnectionClosed) as e:
        conn.put('/up', {}, b'x' * 100)
    assert isinstance(e.value.__cause__, ConnectionResetError)
    assert not isinstance(e.value, EmptyPreambleError)
    assert e.value.response_started is False
    assert conn._state is CLOSED and sock.close_count == 1
    # And with an answer, SEND_CLOSED -> CLOSING.
    (conn, sock) = fake(EARLY_413, send_error=RESET, send_limit=10)
    r = conn.put('/up', {}, b'x' * 100)
    assert (r.status, conn._state) == (413, CLOSING)


def test_send_closed_to_closed_on_error():
    (conn, sock) = send_closed(b'HTTP/1.1 200 OK\r\nbad header\r\n\r\n')
    with pytest.raises(ValueError):
        conn.read_response()
    assert conn._state is CLOSED and sock.close_count == 1


def test_closing_to_closed_on_next_call():
    for call in (
        lambda conn: conn.get('/', {}),
        lambda conn: conn.send_request('GET', '/', {}, None),
        lambda conn: conn.request('GET', '/', {}, None),
    ):
        (conn, sock, r) = closing()
        assert r.body.read() == b'hi'
        assert conn._state is CLOSING and conn.closed and sock.close_count == 0
        with pytest.raises(ConnectionClosed) as e:
            call(conn)
        assert str(e.value) == 'Connection is closed: the server sent connection: close'
        assert conn._state is CLOSED and sock.close_count == 1


def test_closing_refuses_to_send_before_the_body_is_consumed():
    (conn, sock) = fake(CLOSE_HI)
    conn.send_request('GET', '/a', {}, None)
    conn.send_request('GET', '/b', {}, None)
    r = conn.read_response()
    with pytest.raises(ConnectionClosed) as e:
        conn.send_request('GET', '/c', {}, None)
    assert str(e.value) == 'Connection is closing: the server sent connection: close'
    assert e.value.unanswered == (('GET', '/b'),)
    assert conn._state is CLOSING and sock.close_count == 0
    assert r.body.read() == b'hi'
    with pytest.raises(ConnectionClosed) as e:
        conn.read_response()
    assert e.value.unanswered == (('GET', '/b'),)
    assert conn._state is CLOSED and sock.close_count == 1


def test_closing_to_closed_on_read_with_unconsumed_body():
    (conn, sock) = fake(CLOSE_HI)
    conn.send_request('GET', '/a', {}, None)
    conn.send_request('GET', '/b', {}, None)
    conn.read_response()
    with pytest.raises(ValueError) as e:
        conn.read_response()
    assert str(e.value) == 'response body not consumed: Body(<reader>, 2)'
    assert conn._state is CLOSED and sock.close_count == 1


def test_close_from_every_state():
    (conn, sock) = fake()
    assert conn.close() == 'closed'
    assert conn._state is CLOSED and sock.close_count == 1
    (conn, sock) = send_closed()
    assert conn.close() == 'closed'
    assert conn._state is CLOSED and sock.close_count == 1
    (conn, sock, r) = closing()
    assert conn.close() == 'closed'
    assert conn._state is CLOSED and sock.close_count == 1
    assert conn.close() is None
    assert conn._state is CLOSED and sock.close_count == 1


@pytest.mark.parametrize(
    ('start', 'to', 'after'),
    [
        (OPEN, SEND_CLOSED, SEND_CLOSED),
        (OPEN, CLOSING, CLOSING),
        (SEND_CLOSED, CLOSING, CLOSING),
        (SEND_CLOSED, SEND_CLOSED, SEND_CLOSED),
        (CLOSING, SEND_CLOSED, CLOSING),  # a send failing late changes nothing
        (CLOSED, SEND_CLOSED, CLOSED),  # nothing leaves CLOSED
        (CLOSED, CLOSING, CLOSED),
    ],
)
def test_moves_between_threads(start, to, after):
    # The sending thread moves to SEND_CLOSED, the reading thread to CLOSING,
    # either may close: the moves that are not in the table do nothing.
    (conn, sock) = fake()
    conn._state = start
    conn._move(to, 'a reason')
    assert conn._state is after


@pytest.mark.parametrize('start', ['open', 'closing'])
def test_failed_body_closes_the_socket_and_the_state_follows(start):
    head = b'HTTP/1.1 200 OK\r\n' + (b'connection: close\r\n' if start == 'closing' else b'')
    (conn, sock) = fake(head + b'content-length: 10\r\n\r\nshort')
    r = conn.get('/', {})
    assert conn._state is (OPEN if start == 'open' else CLOSING)
    with pytest.raises(ConnectionClosed) as e:
        r.body.read()
    assert e.value.response_started is True
    assert conn.closed and sock.close_count == 1  # the body closed it
    with pytest.raises(ConnectionClosed):
        conn.get('/', {})
    assert conn._state is CLOSED and sock.close_count == 1


def test_pipeline_usage_errors_change_nothing():
    (conn, sock) = fake(OK)
    with pytest.raises(ValueError):
        conn.read_response()
    conn.send_request('GET', '/a', {}, None)
    with pytest.raises(ValueError):
        conn.send_request('POST', '/b', {}, b'x')
    with pytest.raises(ValueError):
        conn.request('GET', '/c', {}, None)
    assert conn._state is OPEN and not conn.closed and sock.close_count == 0
    assert conn.read_response().body.read() == b'ok'


# --------------------------------------------------------------------------
# closed has no side effects


def test_closed_has_no_side_effect():
    (conn, sock, r) = closing()
    for _ in range(3):
        assert conn.closed is False  # CLOSING, the body unread
    assert sock.close_count == 0 and conn._state is CLOSING
    assert r.body.read(1) == b'h'
    assert conn.closed is False and sock.close_count == 0
    assert r.body.read() == b'i'
    for _ in range(3):
        assert conn.closed is True  # CLOSING, the body consumed
    assert sock.close_count == 0 and conn._state is CLOSING
    conn.close()
    assert sock.close_count == 1 and conn.closed is True


def test_closed_has_no_side_effect_on_a_real_socket():
    (conn, peer) = pair()
    try:
        peer.sendall(CLOSE_HI)
        r = conn.get('/', {})
        assert r.body.read() == b'hi'
        assert conn.closed
        assert conn.sock.fileno() >= 0  # still open: nothing closed it yet
        with pytest.raises(ConnectionClosed):
            conn.get('/', {})
        assert conn.sock.fileno() == -1
    finally:
        conn.close()
        peer.close()


# --------------------------------------------------------------------------
# Expect: 100-continue (a socketpair: the wait for 100 polls the descriptor)


def test_early_final_status_stays_open_until_returned():
    (conn, peer) = pair(expect100_timeout=TIMEOUT)
    try:
        peer.sendall(b'HTTP/1.1 417 Expectation Failed\r\ncontent-length: 4\r\n\r\nnope')
        conn.send_request('PUT', '/b', {}, b'body!', expect100=True)
        # Held until read_response() returns it; the pending expect100
        # request keeps anything else from going out.
        assert conn._state is OPEN and not conn.closed
        with pytest.raises(ValueError) as e:
            conn.send_request('GET', '/y', {}, None)
        assert str(e.value) == 'cannot pipeline a request with expect100'
        r = conn.read_response()
        assert r.status == 417
        assert conn._state is CLOSING and not conn.closed
        assert r.body.read() == b'nope'
        assert conn.closed and conn.sock.fileno() >= 0
        with pytest.raises(ConnectionClosed) as e:
            conn.get('/', {})
        assert str(e.value) == 'Connection is closed: the server answered before 100 Continue'
        assert conn._state is CLOSED
    finally:
        conn.close()
        peer.close()


def test_100_continue_keeps_open():
    (conn, peer) = pair(expect100_timeout=TIMEOUT)
    try:
        peer.sendall(b'HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n' + OK)
        r = conn.put('/b', {}, b'body!', expect100=True)
        assert (r.status, r.body.read()) == (200, b'ok')
        assert conn._state is OPEN and not conn.closed
    finally:
        conn.close()
        peer.close()


# --------------------------------------------------------------------------
# Interim responses: one reader for every case


@pytest.mark.parametrize('expect100', [False, True])
def test_interim_limit_is_the_same_with_and_without_expect100(expect100):
    # 16 interim responses are skipped, the 17th head must be final.
    interim = b'HTTP/1.1 102 Processing\r\n\r\n'
    for (count, ok) in ((16, True), (17, False)):
        (conn, peer) = pair(expect100_timeout=TIMEOUT)
        try:
            peer.sendall(interim * count + OK)
            if ok:
                r = conn.put('/', {}, b'abc', expect100=expect100)
                assert r.body.read() == b'ok'
            else:
                with pytest.raises(ValueError) as e:
                    conn.put('/', {}, b'abc', expect100=expect100)
                assert str(e.value) == 'more than 16 interim responses'
                assert conn._state is CLOSED
        finally:
            conn.close()
            peer.close()


@pytest.mark.parametrize('expect100', [False, True])
def test_101_refused_with_and_without_expect100(expect100):
    (conn, peer) = pair(expect100_timeout=TIMEOUT)
    try:
        peer.sendall(b'HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n')
        with pytest.raises(UnsupportedResponse) as e:
            conn.put('/', {}, b'abc', expect100=expect100)
        assert str(e.value) == '101 Switching Protocols is not supported'
        assert conn._state is CLOSED
    finally:
        conn.close()
        peer.close()


# --------------------------------------------------------------------------
# ConnectionClosed.response_started


def test_response_started_attribute():
    assert ConnectionClosed('x').response_started is False
    assert ConnectionClosed('x', (), response_started=True).response_started is True
    assert EmptyPreambleError('x').response_started is False
    assert ConnectionTimedOut('x').response_started is False
    with pytest.raises(TypeError):
        ConnectionClosed('x', (), True)  # keyword-only


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_response_started_false_when_no_byte_arrived(n):
    # The server closed (EmptyPreambleError), reset, or timed out before a byte.
    for kw in ({}, {'recv_error': RESET}, {'recv_error': TimeoutError('timed out')}):
        (conn, sock) = fake(b'', n=n, **kw)
        with pytest.raises(ConnectionClosed) as e:
            conn.get('/', {})
        assert e.value.response_started is False, kw
    (conn, sock) = fake(b'', n=n)
    with pytest.raises(EmptyPreambleError) as e:
        conn.get('/', {})
    assert e.value.response_started is False


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_response_started_false_for_the_next_pipelined_response(n):
    (conn, sock) = fake(OK, n=n)
    conn.send_request('GET', '/a', {}, None)
    conn.send_request('GET', '/b', {}, None)
    assert conn.read_response().body.read() == b'ok'
    with pytest.raises(EmptyPreambleError) as e:
        conn.read_response()
    assert e.value.response_started is False
    assert e.value.unanswered == (('GET', '/b'),)


@pytest.mark.parametrize('n', MOVE_SIZES)
def test_response_started_for_a_truncated_preamble(n):
    head = OK[: OK.index(b'\r\n\r\n') + 3]
    for cut in range(1, len(head) + 1):
        (conn, sock) = fake(head[:cut], n=n)
        with pytest.raises(ConnectionClosed) as e:
            conn.get('/', {})
        assert type(e.value) is ConnectionClosed
        assert str(e.value).startswith('response preamble truncated: ')
        assert e.value.response_started is True, cut
    # and a reset after part of a preamble
    (conn, sock) = fake(b'HTTP/1.1 200 OK\r\n', n=n, recv_error=RESET)
    with pytest.raises(ConnectionClosed) as e:
        conn.get('/', {})
    assert e.value.__cause__ is RESET
    assert e.value.response_started is True


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize(
    'interim',
    [
        b'HTTP/1.1 103 Early Hints\r\n\r\n',
        b'HTTP/1.1 100 Continue\r\n\r\n',  # unasked for
        b'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 O',
    ],
)
def test_response_started_after_an_interim_response(n, interim):
    (conn, sock) = fake(interim, n=n)
    with pytest.raises(ConnectionClosed) as e:
        conn.get('/', {})
    assert e.value.response_started is True
    assert e.value.unanswered == (('GET', '/'),)


def test_response_started_after_100_continue_then_close():
    # 100 Continue came, the body went out, then the server closed: the
    # response to this request had started.
    (conn, peer) = pair(expect100_timeout=TIMEOUT)
    try:
        peer.sendall(b'HTTP/1.1 100 Continue\r\n\r\n')
        peer.shutdown(socket.SHUT_WR)
        with pytest.raises(EmptyPreambleError) as e:
            conn.put('/', {}, b'abc', expect100=True)
        assert e.value.response_started is True
    finally:
        conn.close()
        peer.close()


def test_response_started_false_when_closed_while_waiting_for_100():
    (conn, peer) = pair(expect100_timeout=TIMEOUT)
    try:
        peer.shutdown(socket.SHUT_WR)
        with pytest.raises(EmptyPreambleError) as e:
            conn.put('/', {}, b'abc', expect100=True)
        assert e.value.response_started is False
    finally:
        conn.close()
        peer.close()


@pytest.mark.parametrize('n', MOVE_SIZES)
@pytest.mark.parametrize(
    'wire',
    [
        b'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort',
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel',
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n',
        OK + b'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n',
    ],
    ids=['length', 'inside-chunk', 'before-last-chunk', 'second-response'],
)
def test_response_started_when_the_body_ends_early(n, wire):
    (conn, sock) = fake(wire, n=n)
    conn.send_request('GET', '/a', {}, None)
    r = conn.read_response()
    if wire.startswith(OK):  # the first response is whole; the second is cut
        assert r.body.read() == b'ok'
        conn.send_request('GET', '/b', {}, None)
        r = conn.read_response()
    with pytest.raises(ConnectionClosed) as e:
        r.body.read()
    assert e.value.response_started is True
    assert conn.closed


def test_response_started_when_a_close_delimited_body_follows_a_reset():
    (conn, sock) = fake(
        b'HTTP/1.1 413 Content Too Large\r\nconnection: close\r\n\r\npartial',
        send_error=RESET,
        send_limit=10,
    )
    r = conn.put('/upload', {}, b'x' * 1000)
    with pytest.raises(ConnectionClosed) as e:
        r.body.read()
    assert str(e.value) == 'connection was reset: the body may be incomplete'
    assert e.value.response_started is True


def test_response_started_when_the_send_failed_and_part_of_a_response_came():
    (conn, sock) = fake(b'HTTP/1.1 413 Con', send_error=RESET, send_limit=10)
    with pytest.raises(ConnectionClosed) as e:
        conn.put('/up', {}, b'x' * 100)
    assert isinstance(e.value.__cause__, ConnectionResetError)  # the send's error
    assert e.value.response_started is True
    assert conn._state is CLOSED


# --------------------------------------------------------------------------
# Against live degu servers


def app(session, request, api):
    if request.body is not None and request.path == ['refuse']:
        return (403, 'Forbidden', {}, b'no thanks')  # the body left unread
    if request.body is not None:
        request.body.read()
    if request.path == ['close']:
        return (200, 'OK', {'connection': 'close'}, b'bye')
    if request.path == ['empty-close']:
        return (204, 'No Content', {'connection': 'close'}, None)
    return (200, 'OK', {}, b'hello')


@pytest.fixture(scope='module', params=['ipv4', 'unix'])
def live(request, tmp_path_factory):
    if request.param == 'ipv4':
        address = ('127.0.0.1', 0)
    else:
        address = str(tmp_path_factory.mktemp('states') / 'degu.socket')
    with TempServer(address, app, thread=True, max_requests=3) as server:
        yield Client(server.address, timeout=TIMEOUT, expect100_timeout=TIMEOUT)


def test_live_open_to_closing_to_closed(live):
    with live.connect() as conn:
        assert conn.get('/', {}).body.read() == b'hello'
        assert conn._state is OPEN
        r = conn.get('/close', {})
        assert conn._state is CLOSING and not conn.closed
        assert r.body.read() == b'bye'
        assert conn.closed and conn.sock.fileno() >= 0  # closed only looks
        with pytest.raises(ConnectionClosed) as e:
            conn.get('/', {})
        assert str(e.value) == 'Connection is closed: the server sent connection: close'
        assert conn._state is CLOSED and conn.sock.fileno() == -1


def test_live_closing_without_body_closes_at_once(live):
    with live.connect() as conn:
        r = conn.get('/empty-close', {})
        assert (r.status, r.body) == (204, None)
        assert conn._state is CLOSED and conn.closed and conn.sock.fileno() == -1


def test_live_max_requests(live):
    with live.connect() as conn:
        for i in range(4):
            conn.send_request('GET', f'/{i}', {}, None)
        for _ in range(2):
            assert conn.read_response().body.read() == b'hello'
            assert conn._state is OPEN
        r = conn.read_response()
        assert r.headers['connection'] == 'close'
        assert conn._state is CLOSING
        assert r.body.read() == b'hello'
        assert conn.closed
        with pytest.raises(ConnectionClosed) as e:
            conn.read_response()
        assert e.value.unanswered == (('GET', '/3'),)
        assert conn._state is CLOSED


def test_live_early_final_status(live):
    with live.connect() as conn:
        r = conn.put('/refuse', {}, b'x' * 100000, expect100=True)
        assert (r.status, conn._state) == (403, CLOSING)
        assert r.body.read() == b'no thanks'
        assert conn.closed
        with pytest.raises(ConnectionClosed):
            conn.get('/', {})
        assert conn._state is CLOSED


def test_live_send_closed_then_early_response(live):
    # The app refuses without reading 8 MiB: the server answers and closes,
    # the upload fails (SEND_CLOSED), and the answer is still read.
    with live.connect() as conn:
        result = []
        try:
            conn.send_request('PUT', '/refuse', {}, b'z' * (8 * 1024 * 1024))
        except ConnectionClosed as e:
            result.append(e)
            assert conn._state is SEND_CLOSED and not conn.closed
        r = conn.read_response()
        assert r.status == 403
        assert conn._state is CLOSING
        assert r.body.read() == b'no thanks'
        assert conn.closed
        assert len(result) == 1  # the upload did fail


def test_live_server_closes_idle_connection():
    # The server's idle timeout closes a kept-alive connection: the next
    # request gets no byte back.
    done = threading.Event()

    def quick(session, request, api):
        done.set()
        return (200, 'OK', {}, b'hi')

    with TempServer(('127.0.0.1', 0), quick, thread=True, idle_timeout=0.05) as server:
        with Client(server.address, timeout=TIMEOUT).connect() as conn:
            assert conn.get('/', {}).body.read() == b'hi'
            assert done.wait(TIMEOUT)
            import select

            assert select.select([conn.sock], [], [], TIMEOUT)[0]  # the EOF arrived
            with pytest.raises(ConnectionClosed) as e:
                conn.get('/', {})
            assert e.value.response_started is False
            assert e.value.unanswered == (('GET', '/'),)
            assert conn._state is CLOSED
