"""Tests of the transport (degu/_transport.py) and the message functions over it (degu/_io.py).

The transport knows nothing of HTTP: these tests give it plain bytes.  The
readers and writers run over ``MockTransport``, whose peer sends scripted
chunks, one per ``recv_into``.
"""

import gc
import socket

import pytest
from helpers import FakeSocket, MockTransport, raises

from degu import _io, _transport
from degu.base import (
    BODY_CONSUMED,
    CHUNKED,
    CLOSE,
    LENGTH,
    NO_BODY,
    BlockTooLarge,
    Body,
    ChunkedBody,
    ChunkedBodyIter,
    ConnectionClosed,
    ConnectionTimedOut,
    EmptyPreambleError,
    ParseError,
    Transport,
    read_request,
    read_response_head,
    write_message,
    write_request,
    write_response,
)

# -------------------------------------------------------------------------
# Bytes only


@pytest.mark.parametrize(
    'chunks', [[b'abc||rest'], [b'a', b'b', b'c|', b'|rest'], [b'abc|', b'|rest']]
)
def test_read_block(chunks):
    t = MockTransport(chunks)
    assert t.read_block(b'||', 100, 'block') == b'abc'
    assert t.read_exact(4) == b'rest'
    assert t.read_block(b'||', 100, 'block') is None  # a clean EOF


def test_read_block_eof_truncated_and_limit():
    assert MockTransport([]).read_block(b'||', 100, 'block') is None
    t = MockTransport([b'abc'])
    raises(ConnectionClosed, "block truncated: b'abc'", t.read_block, b'||', 100, 'block')
    t = MockTransport([b'abcdefgh', b'||'])
    e = raises(BlockTooLarge, 'block too large: over 8 bytes', t.read_block, b'||', 8, 'block')
    assert e.head == b'abcdefgh'
    # the delimiter itself counts against the limit
    t = MockTransport([b'abcdefg||'])
    e = raises(BlockTooLarge, 'block too large: over 8 bytes', t.read_block, b'||', 8, 'block')
    assert e.head == b'abcdefg|'
    assert MockTransport([b'abcdef||']).read_block(b'||', 8, 'block') == b'abcdef'


def test_readline_and_exact_reads():
    t = MockTransport([b'5\r', b'\nhello\r\nrest'])
    assert t.readline(10) == b'5\r\n'
    assert t.read_exact(5) == b'hello'
    view = memoryview(bytearray(2))
    assert t.readinto_exact(view) == 2 and bytes(view) == b'\r\n'
    assert t.readinto_some(memoryview(bytearray(10))) == 4
    assert t.read_some(10) == b''  # a clean EOF
    raises(ValueError, "b'\\r\\n' not found in b'abc'", MockTransport([b'abc\r\n']).readline, 3)
    raises(ConnectionClosed, "line truncated: b'ab'", MockTransport([b'ab']).readline, 9)
    raises(ConnectionClosed, "chunk line truncated: b'ab'",
           MockTransport([b'ab']).readline, 9, 'chunk line')
    raises(ConnectionClosed, 'expected to read 5 bytes, but received 2',
           MockTransport([b'ab']).read_exact, 5)


def test_send_before_read_goes_out_once_before_the_next_read():
    t = MockTransport([b'hello'])
    t.send_before_read = b'go ahead\r\n'
    assert t.sent == b''  # lazily: nothing until a read needs the peer
    assert t.read_exact(2) == b'he'
    assert t.read_exact(3) == b'llo'
    assert t.sent == b'go ahead\r\n'
    assert t.send_before_read is None


def test_on_failure_is_the_owners_call():
    failures = []
    t = MockTransport([b'5\r\nhel'], on_failure=failures.append)
    body = ChunkedBody(t)
    with pytest.raises(ConnectionClosed):
        body.read()
    assert [str(e) for e in failures] == ['expected to read 5 bytes, but received 3']
    assert not t.closed  # the owner decides: a server still answers
    # without an owner's call, a transport whose stream lost its place closes
    t = MockTransport([b'5\r\nhel'])
    with pytest.raises(ConnectionClosed):
        ChunkedBody(t).read()
    assert t.closed


def test_writes_coalesce_and_sends_are_counted():
    t = MockTransport()
    t.write(b'a')
    t.write(b'b')
    assert (t.sent, t.sends) == (b'', 0)
    t.flush()
    assert (t.sent, t.sends) == (b'ab', 1)
    t.write(b'c')
    t.discard_writes()
    t.flush()
    assert (t.sent, t.sends) == (b'ab', 1)


def _drain_socket(sock, size):
    got = bytearray()
    while len(got) < size:
        data = sock.recv(1 << 20)
        if not data:
            break
        got += data
    return bytes(got)


def test_a_big_write_goes_out_with_what_was_buffered_in_one_sendmsg():
    # A plain socket: the chunk line buffered before the data leaves with
    # it, in one send (one segment), and the bytes are in order.
    (a, b) = socket.socketpair()
    with a, b:
        b.settimeout(5)
        t = Transport(a, timeout=5)
        assert t._native
        big = bytes(range(256)) * 256  # 64 KiB
        t.write(b'10000\r\n')
        t.write(big)
        t.write(b'\r\n')
        t.flush()
        assert t.sends == 2  # line and data in one, the CRLF in the next
        assert _drain_socket(b, len(big) + 9) == b'10000\r\n' + big + b'\r\n'


class _PartialSocket(FakeSocket):
    # sendmsg() takes only *first* bytes, as a send cut short by SO_SNDTIMEO.
    def __init__(self, first):
        super().__init__(b'')
        self.first = first

    def sendmsg(self, buffers):
        data = b''.join(bytes(b) for b in buffers)[: self.first]
        self.sent += data
        return len(data)


@pytest.mark.parametrize('first', [0, 3, 8, 9, 100, 8 + 70000])
def test_a_cut_short_sendmsg_is_finished(first):
    sock = _PartialSocket(first)
    t = Transport(sock)
    t._native = True  # as over a plain socket
    data = b'd' * 70000
    t.write(b'prefix: ')
    t.write(data)
    assert sock.sent == b'prefix: ' + data


def test_a_failed_sendmsg_is_mapped_as_a_send_is():
    sock = _PartialSocket(0)
    sock.sendmsg = lambda buffers: (_ for _ in ()).throw(ConnectionResetError(104, 'reset'))
    t = Transport(sock)
    t._native = True
    t.write(b'x')
    raises(ConnectionClosed, 'sending: ConnectionResetError: [Errno 104] reset', t.write,
           b'd' * 70000)
    assert t.reset is True


def test_reset_flag_and_error_mapping():
    sock = FakeSocket(b'', send_error=ConnectionResetError(104, 'reset'), send_limit=0)
    t = Transport(sock)
    raises(ConnectionClosed, 'sending: ConnectionResetError: [Errno 104] reset', t.sendall, b'x')
    assert t.reset is True
    # after a reset, an EOF does not prove data that runs until the close complete
    raises(ConnectionClosed, 'connection was reset: the body may be incomplete', t.read_some, 10)
    t = Transport(FakeSocket(b'', recv_error=TimeoutError('t')))
    raises(ConnectionTimedOut, 'reading body timed out', t.read_exact, 1)


def test_kernel_timeouts_on_a_plain_socket():
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(5)
        t = Transport(a, timeout=0.05, idle_timeout=0.05)
        assert a.gettimeout() is None  # blocking: the kernel enforces the timeouts
        raises(ConnectionTimedOut, 'reading block timed out', t.read_block, b'|', 10, 'block')
        assert t.can_sendfile


# -------------------------------------------------------------------------
# Readers and writers over the mock transport


def test_read_request_over_scripted_segments():
    t = MockTransport(
        [b'POST /a?b HTTP/1.1\r\nhost: x\r\n', b'content-length: 5\r\n\r\nhel', b'lo']
    )
    request = read_request(t)
    assert (request.method, request.uri) == ('POST', '/a?b')
    assert (request.path, request.query) == (['a'], 'b')
    assert request.headers == {'host': 'x', 'content-length': 5}
    assert type(request.body) is Body and request.body.read() == b'hello'
    raises(EmptyPreambleError, 'request preamble is empty', read_request, t)


@pytest.mark.parametrize(
    'data, status, message',
    [
        (b'GET /' + b'a' * 9000, 414, 'request line too long: over 8192 bytes'),
        (
            b'GET / HTTP/1.1\r\nx: ' + b'y' * 9000,
            431,
            'request preamble too large: over 8192 bytes',
        ),
        (b'GET / HTTP/1.1\r\ncontent-length: 11\r\n\r\n', 413, 'body too large: 11 > 10'),
        (b'\r\n\r\n\r\n\r\n', 400, 'empty request line'),
    ],
)
def test_read_request_errors_carry_their_status(data, status, message):
    t = MockTransport([data, b'\r\n\r\n'])
    e = raises(ParseError, message, read_request, t, 8192, 100, 10)
    assert e.status == status


def test_chunked_request_over_max_body():
    wire = b'PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n6\r\nhello!\r\n0\r\n\r\n'
    t = MockTransport([wire])
    request = read_request(t, max_body=5)
    e = raises(ParseError, 'chunked body over max_body', request.body.read)
    assert e.status == 413


@pytest.mark.parametrize(
    'method, wire, kind',
    [
        ('GET', b'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi', LENGTH),
        (
            'GET',
            b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
            CHUNKED,
        ),
        ('GET', b'HTTP/1.1 200 OK\r\n\r\nhi', CLOSE),
        ('HEAD', b'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n', NO_BODY),
    ],
)
def test_read_response_head(method, wire, kind):
    (response, version, got) = read_response_head(MockTransport([wire]), method)
    assert (version, got) == ('HTTP/1.1', kind)
    if kind == NO_BODY:
        assert response.body is None
    else:
        assert response.body.read() == b'hi'
        assert response.body.state == BODY_CONSUMED


def test_writers_frame_through_the_body_protocol():
    t = MockTransport()
    assert write_request(t, 'PUT', '/x', {}, b'hi') == len(t.sent)
    assert t.sent == b'PUT /x HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi'
    t = MockTransport()
    body = ChunkedBodyIter([(None, b'hi'), (None, b'')])
    write_response(t, 200, 'OK', {}, body)
    assert t.sent == b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n'
    # CLOSE: a chunked body's data alone, for an HTTP/1.0 peer
    t = MockTransport()
    write_message(t, b'HEAD\r\n\r\n', ChunkedBodyIter([(None, b'hi'), (None, b'')]), CLOSE)
    assert t.sent == b'HEAD\r\n\r\nhi'


def test_socket_wrapper_is_a_transport_with_the_functions():
    assert issubclass(_io.SocketWrapper, Transport)


# -------------------------------------------------------------------------
# Memory bounded by what arrives, not by what the peer declares


def _peak_allocation(func):
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(ConnectionClosed):
            func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_declared_chunk_costs_what_arrives():
    # 'ffffff' declares 16 MiB; 1,000 bytes arrive, then the peer is gone.
    t = MockTransport([b'ffffff\r\n', b'x' * 1000])
    body = ChunkedBody(t)
    peak = _peak_allocation(body.read)
    assert peak < 1 << 20  # was 16 MiB, allocated before any data arrived
    assert body.state == 3  # BODY_ERROR


def test_a_declared_length_costs_what_arrives():
    t = MockTransport([b'x' * 1000])
    peak = _peak_allocation(lambda: t.read_exact(16 * 1024 * 1024))
    assert peak < 1 << 20


def test_large_reads_arrive_whole():
    data = bytes(range(256)) * 4099  # over four pieces, not a multiple of one
    t = MockTransport([data[:5], data[5:300000], data[300000:]])
    assert t.read_exact(len(data)) == data
    t = MockTransport([data[:100]])
    raises(ConnectionClosed, f'expected to read {len(data)} bytes, but received 100',
           t.read_exact, len(data))


def test_a_drain_stops_inside_a_chunk():
    # The drain limit holds inside a chunk: a chunk larger than what is left
    # of it is not read at all, and the connection is given up.
    from degu._body import drain_body

    t = MockTransport([b'10\r\n', b'y' * 16 + b'\r\n', b'ffffff\r\n', b'x' * 1000])
    body = ChunkedBody(t)
    assert drain_body(body, 64 * 1024) is False
    assert t.read_exact(1000) == b'x' * 1000  # the big chunk's data was left unread
    t = MockTransport([b'10\r\n', b'y' * 16 + b'\r\n', b'0\r\n\r\n'])
    assert drain_body(ChunkedBody(t), 64 * 1024) is True


# -------------------------------------------------------------------------
# Transfer deadlines: time blocked on a slow peer runs out


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


class _SlowSocket:
    """Moves *n* bytes per call, each call blocking *step* seconds of the clock."""

    def __init__(self, clock, data=b'', n=1, step=1.0):
        self.clock = clock
        self.data = memoryview(data)
        self.n = n
        self.step = step
        self.sent = bytearray()
        self.timeouts = []

    def settimeout(self, seconds):
        self.timeouts.append(seconds)

    def recv_into(self, buf):
        self.clock.now += self.step
        size = min(len(buf), self.n, len(self.data))
        buf[:size] = self.data[:size]
        self.data = self.data[size:]
        return size

    def send(self, data):
        self.clock.now += self.step
        self.sent += data[: self.n]
        return min(len(data), self.n)

    def close(self):
        pass


def test_a_trickling_peer_runs_out_of_time(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(_transport, 'time', clock)
    # one byte a second against 100 bytes a second: 5 s, plus what it earns
    t = Transport(_SlowSocket(clock, b'x' * 100))
    t.start_deadline(5, 100)
    e = raises(ConnectionTimedOut, 'reading body: slower than 100 bytes per second',
               t.read_exact, 100)
    assert 5 <= clock.now - 1000 <= 6
    assert t.sock.timeouts == []  # no socket option changes on the way
    # fast enough: 1,000 bytes a second
    t = Transport(_SlowSocket(clock, b'x' * 20_000, n=1000))
    t.start_deadline(5, 100)
    assert t.read_exact(20_000) == b'x' * 20_000
    # time between operations does not count, only time blocked on the peer
    t = Transport(_SlowSocket(clock, b'x' * 10, n=1, step=0.1))
    t.start_deadline(1, 100)
    for _ in range(10):
        clock.now += 60  # a slow app, an event stream's pause
        assert t.read_exact(1) == b'x'
    # stopped: the per-operation timeout alone
    t = Transport(_SlowSocket(clock, b'x' * 30))
    t.start_deadline(1, 100)
    t.stop_deadline()
    assert t.read_exact(30) == b'x' * 30
    assert type(e) is ConnectionTimedOut


def test_a_slow_reader_runs_out_of_time(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(_transport, 'time', clock)
    sock = _SlowSocket(clock, n=1)
    t = Transport(sock)
    t.start_deadline(3, 100)
    raises(ConnectionTimedOut, 'sending: slower than 100 bytes per second', t.sendall, b'y' * 50)
    assert 3 <= len(sock.sent) <= 5
    # a send that does not block costs nothing and needs no clock
    t = Transport(_SlowSocket(clock, n=1 << 20))
    t.start_deadline(0.001, 1)
    now = clock.now
    t.sendall(b'z' * 1000)
    assert clock.now - now == 1.0  # the one send() call of the fake, nothing else


def test_receive_available_and_put_back():
    # What the server's accept loop uses: a receive that never waits, a check
    # for a whole block, and bytes read before the transport existed.
    a, b = socket.socketpair()
    with a, b:
        t = Transport(a, timeout=5)
        assert t.receive_available() is None  # nothing yet: no wait
        b.sendall(b'GET / HTTP/1.1\r\n')
        assert t.receive_available() == 16
        assert not t.holds_block(b'\r\n\r\n', 1024)
        b.sendall(b'\r\n')
        assert t.receive_available() == 2
        assert t.holds_block(b'\r\n\r\n', 1024)
        assert t.read_block(b'\r\n\r\n', 1024, 'block') == b'GET / HTTP/1.1'
        b.close()
        assert t.receive_available() == 0  # EOF
    t = MockTransport([b' world||'])
    t.put_back(b'hello')
    assert t.read_block(b'||', 100, 'block') == b'hello world'
    t = MockTransport([b'x' * 10])
    assert t.holds_block(b'||', 8) is False  # nothing buffered yet
    t.put_back(b'y' * 8)
    assert t.holds_block(b'||', 8) is True  # full up to its limit: hand it on


def test_looking_at_what_arrived_before_reading_it():
    # What the server uses to decide whether a request body is at hand:
    # holds(), scan() and receive_more() consume nothing.
    a, b = socket.socketpair()
    with a, b:
        t = Transport(a, timeout=5, buffer_size=16)
        b.sendall(b'0123456789')
        assert t.receive_more(1, 'body') == 10
        assert t.holds(10) and not t.holds(11)
        assert t.holds(10**9) is False  # more than the buffer holds: only when full
        assert t.scan(lambda buf, start, stop: bytes(buf[start:stop])) == b'0123456789'
        raises(ConnectionTimedOut, 'reading body timed out', t.receive_more, 0.05, 'body')
        b.sendall(b'abcdefgh')
        assert t.receive_more(1, 'body') == 6  # up to the end of the buffer
        assert t.holds(10**9) is True  # full: nothing more can arrive before a read
        assert t.receive_available() is None  # full: no receive, not an EOF
        assert t.read_exact(16) == b'0123456789abcdef'
        assert t.receive_available() == 2
        assert t.read_exact(2) == b'gh'
        b.close()
        assert t.receive_more(1, 'body') == 0  # EOF


def test_detach_leaves_the_socket_open():
    a, b = socket.socketpair()
    with a, b:
        t = Transport(a, timeout=5)
        t.write(b'unsent')
        assert t.detach() is a
        assert t.closed
        del t
        gc.collect()  # nor does the transport's finalizer close it
        a.sendall(b'still open')
        assert b.recv(100) == b'still open'


def test_an_idle_transport_lets_its_buffer_go():
    # A parked connection costs little more than its socket: the 8 KiB read
    # buffer goes while nothing is buffered, and comes back with the next bytes.
    a, b = socket.socketpair()
    with a, b:
        t = Transport(a, timeout=5, buffer_size=64)
        b.sendall(b'GET / HTTP/1.1\r\n\r\nGET')
        assert t.receive_available() == 21
        assert t.read_block(b'\r\n\r\n', 64, 'preamble') == b'GET / HTTP/1.1'
        assert t.release_buffer() is False  # 'GET' is buffered: kept
        assert t.read_exact(3) == b'GET'
        assert t.release_buffer() is True
        assert len(t._buf) == 0
        assert t.receive_available() is None  # nothing came: a new buffer, empty
        assert len(t._buf) == 64
        b.sendall(b' /next HTTP/1.1\r\n\r\n')
        assert t.receive_available() == 19
        assert t.read_block(b'\r\n\r\n', 64, 'preamble') == b' /next HTTP/1.1'
