"""The C core's socket send that keeps the GIL: ``degu._cparse.held_sender()``.

It must behave as ``sock.send`` does, result for result and error for
error: it only decides whether the GIL is let go for the syscall.  A small
``bytes`` that the socket takes at once is sent with the GIL held; anything
else (a would-block, a signal, a large or non-bytes buffer, a closed
socket) goes to the socket's own ``send()``.
"""

import errno
import os
import socket
import threading

import pytest

from degu import _parse
from degu._transport import Transport

try:
    C = _parse._load_c_core()
except ImportError:
    C = None
pytestmark = pytest.mark.skipif(
    C is None and os.environ.get('DEGU_REQUIRE_C') != '1',
    reason='degu._cparse was not built (the C core is optional)',
)
TIMEOUT = 5


class Recorder:
    """What held_sender() asks of a socket, over a real one, counting fallbacks."""

    def __init__(self, sock):
        self.sock = sock
        self.fallbacks = []

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        self.fallbacks.append(bytes(data))
        return self.sock.send(data)


@pytest.fixture
def pair():
    (a, b) = socket.socketpair()
    a.settimeout(TIMEOUT)
    b.settimeout(TIMEOUT)
    yield (a, b)
    a.close()
    b.close()


def test_small_bytes_sent_with_the_gil_held(pair):
    (a, b) = pair
    rec = Recorder(a)
    send = C.held_sender(rec)
    assert send(b'hello') == 5
    assert send(b'') == 0
    assert b.recv(16) == b'hello'
    assert rec.fallbacks == []


@pytest.mark.parametrize(
    'data',
    [bytearray(b'array'), memoryview(b'view'), b'x' * (64 * 1024 + 1)],
    ids=['bytearray', 'memoryview', 'over 64 KiB'],
)
def test_other_data_goes_to_the_socket(pair, data):
    (a, b) = pair
    rec = Recorder(a)
    b.setblocking(False)
    sent = C.held_sender(rec)(data)
    assert rec.fallbacks == [bytes(data)]
    assert 0 < sent <= len(data)  # the socket's own count
    got = b''
    while len(got) < sent:
        got += b.recv(sent - len(got))
    assert got == bytes(data)[:sent]


def test_exactly_64_kib_is_held(pair):
    (a, b) = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    rec = Recorder(a)
    data = os.urandom(64 * 1024)
    sent = C.held_sender(rec)(data)
    assert rec.fallbacks == [] and 0 < sent <= len(data)


def test_would_block_goes_to_the_socket(pair):
    (a, b) = pair
    a.setblocking(False)
    while True:  # fill the buffers (bounded: a socketpair holds a few hundred KiB)
        try:
            a.send(b'f' * 65536)
        except BlockingIOError:
            break
    rec = Recorder(a)
    with pytest.raises(BlockingIOError):  # the socket's own answer: non-blocking
        C.held_sender(rec)(b'more')
    assert rec.fallbacks == [b'more']


def test_closed_socket_raises_as_send_does(pair):
    (a, b) = pair
    send = C.held_sender(a)
    a.close()
    with pytest.raises(OSError) as held:
        send(b'x')
    with pytest.raises(OSError) as plain:
        a.send(b'x')
    assert (type(held.value), held.value.errno) == (type(plain.value), plain.value.errno)
    assert held.value.errno == errno.EBADF


def test_peer_gone_raises_as_send_does():
    errors = []
    for held in (True, False):
        (a, b) = socket.socketpair()
        b.close()
        send = C.held_sender(a) if held else a.send
        with pytest.raises(OSError) as e:
            send(b'x')
        errors.append((type(e.value), e.value.errno))
        a.close()
    assert errors[0] == errors[1] == (BrokenPipeError, errno.EPIPE)


def test_fileno_errors_propagate():
    class Broken:
        def fileno(self):
            raise ValueError('no fileno')

        def send(self, data):
            raise AssertionError('not reached')

    with pytest.raises(ValueError, match='no fileno'):
        C.held_sender(Broken())(b'x')


def test_needs_fileno_and_send():
    with pytest.raises(AttributeError):
        C.held_sender(object())


def test_transport_uses_it_on_plain_sockets_of_the_c_core(pair):
    (a, b) = pair
    transport = Transport(a, timeout=TIMEOUT)
    if _parse.CORE == 'c':
        assert type(transport._send) is type(C.held_sender(a))
    else:
        assert transport._send == a.send
    transport.sendall(b'ping')
    assert b.recv(4) == b'ping'


def test_threads_each_send_their_own():
    # Eight threads, each on its own pair: every byte arrives, in order.
    results = {}

    def run(k):
        (a, b) = socket.socketpair()
        a.settimeout(TIMEOUT)
        b.settimeout(TIMEOUT)
        send = C.held_sender(a)
        expected = b''.join(b'%d:%d;' % (k, i) for i in range(500))
        got = bytearray()
        for i in range(500):
            msg = b'%d:%d;' % (k, i)
            sent = send(msg)
            assert sent == len(msg)
            got += b.recv(64)
        results[k] = bytes(got) == expected
        a.close()
        b.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 4)
    assert results == {k: True for k in range(8)}
