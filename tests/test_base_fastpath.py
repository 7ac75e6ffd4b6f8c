"""Tests of the engine's fast paths: kernel-enforced socket timeouts, the
memoized parsers and renderers, and sendfile() under native timeouts.  Each
must behave exactly like the slow path it shortcuts."""

import os
import socket
import struct
import tempfile
import threading
import time

import pytest

from degu import _parse
from degu.base import (
    Body,
    ConnectionTimedOut,
    Range,
    SocketWrapper,
    parse_headers,
    parse_request_line,
    render_response,
)


def timeval(sock, option):
    (sec, usec) = struct.unpack('ll', sock.getsockopt(socket.SOL_SOCKET, option, 16))
    return sec + usec / 1e6


# --------------------------------------------------------------------------
# Native timeouts


def test_plain_socket_gets_kernel_timeouts():
    (a, b) = socket.socketpair()
    with a, b:
        a.settimeout(7)
        wrapper = SocketWrapper(a)
        assert a.gettimeout() is None  # blocking: no poll() before each call
        assert timeval(a, socket.SO_RCVTIMEO) == 7
        assert timeval(a, socket.SO_SNDTIMEO) == 7
        assert wrapper.timeout == 7
        wrapper.close()


def test_timeout_argument_wins_and_idle_timeout_switches_lazily():
    (a, b) = socket.socketpair()
    with a, b:
        wrapper = SocketWrapper(a, timeout=5, idle_timeout=2)
        assert timeval(a, socket.SO_RCVTIMEO) == 5
        b.sendall(b'GET / HTTP/1.1\r\n\r\n')
        wrapper.read_request()
        # The wait for the first byte used idle_timeout, and it stays set:
        # the next request's wait needs it again.
        assert timeval(a, socket.SO_RCVTIMEO) == 2
        b.sendall(b'PUT / HTTP/1.1\r\ncontent-length: 5000\r\n\r\n')
        request = wrapper.read_request()
        b.sendall(b'x' * 5000)
        assert request.body.read() == b'x' * 5000
        assert timeval(a, socket.SO_RCVTIMEO) == 5  # a body read: back to timeout


def test_no_kernel_timeouts_without_a_timeout_or_for_fakes():
    (a, b) = socket.socketpair()
    with a, b:
        wrapper = SocketWrapper(a)
        assert a.gettimeout() is None
        assert timeval(a, socket.SO_RCVTIMEO) == 0
        assert wrapper.timeout is None


def test_native_receive_timeout_is_connection_timed_out():
    (a, b) = socket.socketpair()
    with a, b:
        wrapper = SocketWrapper(a, timeout=0.05)
        start = time.monotonic()
        with pytest.raises(ConnectionTimedOut) as e:
            wrapper.read_request()
        assert str(e.value) == 'reading request preamble timed out'
        assert isinstance(e.value, TimeoutError)
        assert time.monotonic() - start < 5


def test_native_whole_preamble_deadline():
    (a, b) = socket.socketpair()
    with a, b:
        wrapper = SocketWrapper(a, timeout=0.3)
        stop = threading.Event()

        def dribble():
            for byte in b'GET / HTTP/1.1\r\nX: ' + b'y' * 200:
                if stop.wait(0.02):
                    return
                try:
                    b.send(bytes([byte]))
                except OSError:
                    return

        thread = threading.Thread(target=dribble)
        thread.start()
        start = time.monotonic()
        try:
            with pytest.raises(ConnectionTimedOut) as e:
                wrapper.read_request()
        finally:
            stop.set()
            thread.join(5)
        assert time.monotonic() - start < 3  # not extended by each byte
        assert str(e.value) in (
            'request preamble not complete in 0.3s',
            'reading request preamble timed out',
        )


def test_native_send_timeout_is_connection_timed_out():
    (a, b) = socket.socketpair()
    with a, b:
        wrapper = SocketWrapper(a, timeout=0.05)
        with pytest.raises(ConnectionTimedOut) as e:
            for _ in range(10_000):  # the peer never reads: the buffers fill
                wrapper.write_message(b'x' * 65536, None)
        assert str(e.value) == 'sending timed out'


def test_sendfile_under_native_timeouts():
    (a, b) = socket.socketpair()
    data = os.urandom(200_000)
    with a, b, tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(1000)
        wrapper = SocketWrapper(a, timeout=5)
        received = bytearray()

        def reader():
            while len(received) < 10 + 150_000:
                chunk = b.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        thread = threading.Thread(target=reader)
        thread.start()
        body = Body(f, 150_000)
        assert wrapper.write_message(b'preamble: ', body) == 150_010
        thread.join(5)
        assert bytes(received) == b'preamble: ' + data[1000:151_000]
        assert body.state == 2
        assert a.gettimeout() is None  # blocking again after the transfer


# --------------------------------------------------------------------------
# Memoized parsers and renderers: the caches of the pure-Python core

python_core = pytest.mark.parametrize('core', ['python'], indirect=True)


@python_core
def test_request_target_cache_hands_out_fresh_lists(core):
    line = b'GET /cached/path?q=1 HTTP/1.1'
    first = parse_request_line(line)
    first[2].append('changed')  # an app shifting or editing its path
    second = parse_request_line(line)
    assert second == ('GET', '/cached/path?q=1', ['cached', 'path'], 'q=1', 'HTTP/1.1')
    assert second[2] is not first[2]
    assert _parse._TARGETS[b'/cached/path?q=1'] == ('/cached/path?q=1', ('cached', 'path'), 'q=1')


@python_core
def test_request_target_cache_is_bounded(core):
    _parse._TARGETS.clear()
    for i in range(_parse._CACHE_ENTRIES + 5):
        parse_request_line(b'GET /n/%d HTTP/1.1' % i)
    assert len(_parse._TARGETS) <= _parse._CACHE_ENTRIES
    long_target = b'/' + b'a' * _parse._TARGET_CACHE_LEN
    assert parse_request_line(b'GET ' + long_target + b' HTTP/1.1')[1] == long_target.decode()
    assert long_target not in _parse._TARGETS
    with pytest.raises(ValueError):  # errors are never remembered
        parse_request_line(b'GET /a//b HTTP/1.1')
    assert b'/a//b' not in _parse._TARGETS


@python_core
def test_header_block_cache_hands_out_fresh_dicts(core):
    block = b'Host: example.com\r\nRange: bytes=0-9\r\nX-A: 1'
    first = parse_headers(block)
    first['host'] = 'changed'
    del first['x-a']
    second = parse_headers(block)
    assert second == {'host': 'example.com', 'range': Range(0, 10), 'x-a': '1'}
    assert second is not first
    # The cache key includes what changes the rules.
    assert parse_headers(block, True) == {  # in a response, range is text
        'host': 'example.com',
        'range': 'bytes=0-9',
        'x-a': '1',
    }
    with pytest.raises(ValueError):
        parse_headers(block, False, 2)


@python_core
def test_header_block_cache_is_bounded(core):
    _parse._BLOCKS.clear()
    for i in range(_parse._CACHE_ENTRIES + 5):
        parse_headers(b'X-N: %d' % i)
    assert len(_parse._BLOCKS) <= _parse._CACHE_ENTRIES
    big = b'X-Big: ' + b'b' * _parse._BLOCK_CACHE_LEN
    assert parse_headers(big) == {'x-big': 'b' * _parse._BLOCK_CACHE_LEN}
    assert not [key for key in _parse._BLOCKS if key[0] == big]


@python_core
def test_header_line_cache_is_bounded_and_checked(core):
    _parse._LINES.clear()
    for i in range(_parse._LINES_MAX + 5):
        render_response(200, 'OK', {'x-n': str(i)})
    assert len(_parse._LINES) <= _parse._LINES_MAX
    long_value = 'v' * (_parse._LINE_VALUE_MAX + 1)
    assert render_response(200, 'OK', {'x-long': long_value}).endswith(
        f'x-long: {long_value}\r\n\r\n'.encode()
    )
    assert ('x-long', long_value) not in _parse._LINES
    with pytest.raises(ValueError) as e:  # a cached good line does not vouch for others
        render_response(200, 'OK', {'x-n': '1\r\nx-injected: 1'})
    assert str(e.value) == "bad header value: 'x-n': '1\\r\\nx-injected: 1'"


def test_status_line_cache_checks_types_first(core):
    assert render_response(200, 'OK', {}) == b'HTTP/1.1 200 OK\r\n\r\n'
    with pytest.raises(TypeError):
        render_response(200.0, 'OK', {})  # 200.0 == 200: the cache must not answer


def test_list_values_count_as_lines(core):
    with pytest.raises(ValueError) as e:
        render_response(200, 'OK', {'set-cookie': ['c=%d' % i for i in range(101)]})
    assert str(e.value) == 'need at most 100 header lines; got 101'


def test_send_returning_zero_raises_instead_of_looping():
    class Stuck:
        def __init__(self):
            self.calls = 0

        def recv_into(self, buf):  # pragma: no cover - never called
            return 0

        def send(self, data):
            self.calls += 1
            return 3 if self.calls == 1 else 0

        def close(self):
            pass

    sock = Stuck()
    wrapper = SocketWrapper(sock)
    with pytest.raises(ConnectionError) as e:
        wrapper.write_message(b'preamble', None)
    assert str(e.value) == 'sending: send() returned 0'
    assert sock.calls == 2


def test_read_buffer_starts_small_and_grows_for_a_big_preamble():
    from helpers import FakeSocket

    from degu import _io

    big = b'GET /big HTTP/1.1\r\nx-big: ' + b'b' * 20_000 + b'\r\n\r\n'
    small = b'GET /small HTTP/1.1\r\n\r\n'
    for size in (1, 4096, 1 << 20):
        wrapper = SocketWrapper(FakeSocket(small + big + small, size))
        assert len(wrapper._buf) == _io.START_BUF_LEN  # what an idle connection holds
        assert wrapper.read_request().uri == '/small'
        request = wrapper.read_request()
        assert (request.uri, request.headers) == ('/big', {'x-big': 'b' * 20_000})
        assert len(wrapper._buf) == 32 * 1024  # grown to the preamble limit, once
        assert wrapper.read_request().uri == '/small'
