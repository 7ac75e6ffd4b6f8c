"""The pool behind ``Client.request()``: lending, giving back, retries, deadlines.

Two kinds of server on the other end:

* ``Scripted``, a server that parses every request with h11 (a strict
  parser we did not write) and then does what its *plan* says: answer,
  answer and close at once (a server's idle close, at the worst moment),
  close without answering, answer half a preamble, or stay silent.  It
  records each request with the connection it came on, so a test sees
  exactly what was sent twice and what never arrived.
* A degu server (``TempServer`` in a thread) over IPv4, IPv6 and AF_UNIX,
  for the life of the pool under load, and with an ``idle_timeout`` so
  short that it closes idle connections while clients are about to use
  them.

Every socket wait is bounded; every loop has a count.
"""

import io
import os
import random
import socket
import threading
import time

import h11
import pytest

from degu.base import BodyIter
from degu.client import (
    Client,
    ConnectionClosed,
    ConnectionTimedOut,
    PoolTimeout,
    SSLClient,
)
from degu.misc import TempServer

WAIT = 5.0  # seconds: the bound on any wait of the scripted server


# --------------------------------------------------------------------------
# A server that follows a script


class Scripted:
    """A threaded server; ``plan(conn_no, request_no, request)`` says what to do.

    *request* is ``(method, target, headers, body)`` as h11 parsed it.  The
    plan returns ``'answer'`` (200 with body ``b'ok'``), ``('answer', body)``,
    ``'answer-close'`` (answer, then close without ``connection: close``, as
    an idle timeout would), ``'close'`` (close without answering),
    ``'partial'`` (half a status line, then close), ``'silent'`` (never
    answer), ``'answer-stray'`` (a 408 nobody asked for right after the
    answer) or ``'answer-late-408'`` (that 408 a moment later, then close).
    ``requests`` lists ``(conn_no, method, target, body)``.
    """

    def __init__(self, plan):
        self.plan = plan
        self.requests = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self.stopping = threading.Event()
        self.threads = []
        self.errors = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                (sock, _) = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(
                target=self._serve, args=(sock, self.connections), daemon=True
            )
            self.threads.append(thread)
            thread.start()

    def _read_request(self, conn, sock):
        (method, target, headers, body) = (None, None, None, b'')
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data = sock.recv(65536)
                except OSError:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                method = event.method.decode()
                target = event.target.decode()
                headers = {k.decode(): v.decode() for (k, v) in event.headers}
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return (method, target, headers, body)
            elif isinstance(event, h11.ConnectionClosed):
                return None
        return None

    def _serve(self, sock, conn_no):
        conn = h11.Connection(h11.SERVER)
        try:
            for n in range(1000):
                try:
                    request = self._read_request(conn, sock)
                except h11.RemoteProtocolError as e:
                    self.errors.append(e)
                    return
                if request is None:
                    return
                self.requests.append((conn_no, request[0], request[1], request[3]))
                action = self.plan(conn_no, n, request)
                body = b'ok'
                if type(action) is tuple:
                    (action, body) = action
                if action == 'close':
                    return
                if action == 'partial':
                    sock.sendall(b'HTTP/1.1 20')
                    return
                if action == 'silent':
                    self.stopping.wait(WAIT)
                    return
                data = conn.send(
                    h11.Response(status_code=200, headers=[('content-length', str(len(body)))])
                )
                if request[0] != 'HEAD':
                    data += conn.send(h11.Data(data=body))
                data += conn.send(h11.EndOfMessage())
                if action == 'answer-stray':
                    data += STRAY  # in the same segment as the response
                sock.sendall(data)
                if action == 'answer-close':
                    return
                if action == 'answer-late-408':
                    time.sleep(0.02)  # while the client's connection is idle
                    sock.sendall(STRAY)
                    return
                conn.start_next_cycle()
        finally:
            sock.close()

    def close(self):
        self.stopping.set()
        self.sock.close()
        self.thread.join(WAIT)
        for thread in self.threads:
            thread.join(WAIT)
        assert self.errors == []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


STRAY = b'HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'


def answer(conn_no, n, request):
    return 'answer'


def second_request(action):
    """A plan: the second request on the first connection gets *action*; all others an answer.

    The first request makes the connection a kept-alive one of the pool;
    the second finds it in the state the test needs (closed, silent...).
    """

    def plan(conn_no, n, request):
        return action if (conn_no, n) == (1, 1) else 'answer'

    return plan


def idle_close(conn_no, n, request):
    # Each connection carries one response, then the server closes it.
    return 'answer-close'


def client_for(server, **options):
    options.setdefault('timeout', WAIT)
    return Client(server.address, **options)


# --------------------------------------------------------------------------
# Lending and giving back


def test_one_connection_for_sequential_requests():
    with Scripted(answer) as server:
        client = client_for(server)
        for i in range(5):
            response = client.get(f'/{i}')
            assert (response.status, response.body.read()) == (200, b'ok')
        info = client.pool_info()
        assert (info['connects'], info['reuses'], info['open'], info['idle']) == (1, 4, 1, 1)
        assert [r[0] for r in server.requests] == [1] * 5
        client.close()
        assert client.pool_info()['open'] == 0


def test_callers_headers_are_left_alone():
    with Scripted(answer) as server:
        client = client_for(server)
        headers = {'X-Token': 'secret'}
        client.get('/', headers).body.read()
        client.put('/', headers, b'data').body.read()
        assert headers == {'X-Token': 'secret'}
        client.close()


def test_a_body_that_came_with_the_preamble_gives_the_connection_back_at_once():
    with Scripted(answer) as server:
        client = client_for(server)
        response = client.get('/')
        # Not read yet, but nothing of it is on the wire any more.
        assert client.pool_info()['lent'] == 0
        assert repr(response.body) == 'Body(<reader>, 2)'
        assert client.get('/again').body.read() == b'ok'
        assert response.body.read(1) == b'o'
        assert response.body.read() == b'k'
        assert client.pool_info()['connects'] == 1
        client.close()


BIG = b'x' * (1 << 20)


def big_app(session, request, api):
    if request.path == ['big']:
        return (200, 'OK', {}, BIG)
    if request.path == ['chunked']:
        return (200, 'OK', {}, api.ChunkedBodyIter([(None, b'ab'), (None, b'cd'), (None, b'')]))
    return (200, 'OK', {}, b'small')


@pytest.fixture
def big_server():
    with TempServer(('127.0.0.1', 0), big_app, thread=True) as server:
        yield server


def test_lent_until_the_body_is_read(big_server):
    client = Client(big_server.address, pool_size=2)
    response = client.get('/big')
    assert client.pool_info()['lent'] == 1
    assert response.body.read() == BIG
    info = client.pool_info()
    assert (info['lent'], info['idle']) == (1 - 1, 1)
    assert client.get('/').body.read() == b'small'
    assert client.pool_info()['connects'] == 1
    client.close()


def test_a_dropped_response_drains_what_is_buffered_else_closes(big_server):
    client = Client(big_server.address)
    response = client.get('/chunked')
    assert client.pool_info()['lent'] == 1
    del response  # all of it was buffered: drained, and the connection is back
    info = client.pool_info()
    assert (info['lent'], info['idle'], info['dropped']) == (0, 1, 0)
    response = client.get('/big')
    del response  # a megabyte not read: closing is cheaper than reading it
    info = client.pool_info()
    assert (info['open'], info['dropped']) == (0, 1)
    assert client.get('/').body.read() == b'small'
    client.close()


def test_response_close_and_with(big_server):
    client = Client(big_server.address)
    with client.get('/chunked') as response:
        assert response.body.readchunk() == (None, b'ab')
    assert client.pool_info()['idle'] == 1  # the rest (small) was read
    response = client.get('/big')
    assert response.body.read(10) == b'x' * 10
    response.close()
    assert client.pool_info()['dropped'] == 1
    assert response.body.state == 3  # BODY_ERROR: it cannot be read any more
    with pytest.raises(ValueError):
        response.body.read()
    response.close()  # again: nothing
    client.close()


def test_pool_timeout_and_a_waiter_woken(big_server):
    client = Client(big_server.address, pool_size=1, pool_timeout=0.2)
    held = client.get('/big')
    t0 = time.monotonic()
    with pytest.raises(PoolTimeout) as info:
        client.get('/')
    assert 0.15 < time.monotonic() - t0 < 2
    assert str(info.value) == (
        'no connection free within 0.2 s (pool_timeout): all 1 of pool_size=1 lent out'
        ' (read or close() each response body)'
    )
    assert info.value.unanswered == ()
    assert isinstance(info.value, ConnectionTimedOut)

    client.pool_timeout = 5.0  # a new pool takes it: close() and start again
    client.close()
    held.body.read()  # its connection closes: the pool it came from is closed
    held = client.get('/big')
    results = []

    def waiter():
        results.append(client.get('/').body.read())

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    assert client.pool_info()['waiting'] == 1
    t0 = time.monotonic()
    held.body.read()
    thread.join(WAIT)
    assert results == [b'small']
    assert time.monotonic() - t0 < 1
    assert client.pool_info()['connects'] == 1
    client.close()


def test_idle_connections_expire():
    with Scripted(answer) as server:
        client = client_for(server, pool_idle_timeout=0.05)
        client.get('/').body.read()
        time.sleep(0.1)
        client.get('/').body.read()
        info = client.pool_info()
        assert (info['connects'], info['expired'], info['open']) == (2, 1, 1)
        assert [r[0] for r in server.requests] == [1, 2]
        client.close()


def test_connection_close_from_the_server_is_not_reused():
    def app(session, request, api):
        return (200, 'OK', {'connection': 'close'}, b'bye')

    with TempServer(('127.0.0.1', 0), app, thread=True) as server:
        client = Client(server.address)
        for _ in range(3):
            assert client.get('/').body.read() == b'bye'
        info = client.pool_info()
        assert (info['connects'], info['reuses'], info['retries']) == (3, 0, 0)
        assert info['open'] == 0
        client.close()


def test_close_keeps_the_client_usable(big_server):
    client = Client(big_server.address)
    lent = client.get('/big')
    client.get('/').body.read()
    assert client.pool_info()['open'] == 2
    client.close()
    assert client.pool_info()['open'] == 0  # a new, empty pool
    lent.body.read()  # given back to a closed pool: closed
    assert client.get('/').body.read() == b'small'
    assert client.pool_info()['connects'] == 1
    with client:
        pass
    assert client.pool_info()['open'] == 0


@pytest.mark.parametrize('action', ['answer-stray', 'answer-late-408'])
def test_bytes_no_request_asked_for_are_never_read_as_a_response(action):
    # A server that sends a 408 on an idle connection (or with the response
    # before it): the next request must not take it for its answer.
    def plan(conn_no, n, request):
        return action if conn_no == 1 else 'answer'

    with Scripted(plan) as server:
        client = client_for(server)
        assert client.get('/first').body.read() == b'ok'
        time.sleep(0.06)  # the late 408 has arrived
        response = client.get('/second')
        assert (response.status, response.body.read()) == (200, b'ok')
        assert [(r[0], r[2]) for r in server.requests] == [(1, '/first'), (2, '/second')]
        info = client.pool_info()
        assert info['stale'] + info['dropped'] == 1
        client.close()


# --------------------------------------------------------------------------
# Retries: once, only when safe


def test_get_is_retried_when_the_server_closed_the_idle_connection():
    with Scripted(idle_close) as server:
        client = client_for(server)
        for i in range(4):
            assert client.get(f'/{i}').body.read() == b'ok'
        info = client.pool_info()
        # Each of the 3 reused connections was either found closed before
        # use (idle a millisecond or more: polled) or failed and was retried.
        assert info['retries'] + info['stale'] == 3
        assert info['connects'] == 4
        # Each request reached the server once, on its own connection.
        assert [r[2] for r in server.requests] == ['/0', '/1', '/2', '/3']
        client.close()


@pytest.mark.parametrize('method', ['HEAD', 'PUT', 'DELETE', 'OPTIONS'])
def test_other_idempotent_methods_are_retried(method):
    # The server reads the second request and closes without a byte of
    # answer, as when its idle close crosses the request on the wire.
    plan = second_request('close')

    with Scripted(plan) as server:
        client = client_for(server)
        client.get('/first').body.read()
        body = b'data' if method == 'PUT' else None
        response = client.request(method, '/x', None, body)
        assert response.status == 200
        assert client.pool_info()['retries'] == 1
        sent = [(r[0], r[1], r[3]) for r in server.requests]
        assert sent == [(1, 'GET', b''), (1, method, body or b''), (2, method, body or b'')]
        client.close()


def test_a_request_the_server_read_then_dropped_is_sent_again_if_idempotent():
    # The server took the request and closed without a byte of answer: for
    # a PUT that is safe to repeat (RFC 9110 section 9.2.2).
    plan = second_request('close')

    with Scripted(plan) as server:
        client = client_for(server)
        client.get('/').body.read()
        assert client.put('/doc', body=b'v1').status == 200
        assert [(r[0], r[1], r[3]) for r in server.requests] == [
            (1, 'GET', b''),
            (1, 'PUT', b'v1'),
            (2, 'PUT', b'v1'),
        ]
        assert client.pool_info()['retries'] == 1
        client.close()


def test_a_regular_file_is_sent_again_from_where_it_was(tmp_path):
    plan = second_request('close')

    path = tmp_path / 'data'
    path.write_bytes(b'0123456789')
    with Scripted(plan) as server, open(path, 'rb') as fp:
        client = client_for(server)
        client.get('/').body.read()
        fp.seek(3)
        assert client.put('/doc', body=fp).status == 200
        assert [r[3] for r in server.requests[1:]] == [b'3456789', b'3456789']
        client.close()


@pytest.mark.parametrize('method', ['POST', 'PATCH'])
def test_post_and_patch_are_never_sent_twice(method):
    plan = second_request('close')

    with Scripted(plan) as server:
        client = client_for(server)
        client.get('/').body.read()
        with pytest.raises(ConnectionClosed) as info:
            client.request(method, '/new', None, b'payload')
        assert info.value.response_started is False
        assert info.value.unanswered == ((method, '/new'),)
        assert [(r[0], r[1]) for r in server.requests] == [(1, 'GET'), (1, method)]
        assert client.pool_info()['retries'] == 0
        client.close()


def test_post_does_not_go_out_on_a_connection_the_server_closed():
    # Checked before use: the server's close had arrived, so the POST goes
    # on a new connection, and reaches the server once.
    with Scripted(idle_close) as server:
        client = client_for(server)
        client.get('/').body.read()
        deadline = time.monotonic() + WAIT
        while server.connections < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the FIN is in
        assert client.post('/new', body=b'payload').status == 200
        info = client.pool_info()
        assert (info['stale'], info['retries'], info['connects']) == (1, 0, 2)
        assert [(r[0], r[1]) for r in server.requests] == [(1, 'GET'), (2, 'POST')]
        client.close()


def test_a_body_that_cannot_be_sent_again_is_not_retried():
    plan = second_request('close')

    with Scripted(plan) as server:
        client = client_for(server)
        client.get('/').body.read()
        with pytest.raises(ConnectionClosed):
            client.put('/doc', body=BodyIter([b'a', b'b'], 2))
        assert client.pool_info()['retries'] == 0
        assert len(server.requests) == 2
        client.close()


def test_no_retry_once_the_response_started():
    plan = second_request('partial')

    with Scripted(plan) as server:
        client = client_for(server)
        client.get('/').body.read()
        with pytest.raises(ConnectionClosed) as info:
            client.get('/again')
        assert info.value.response_started is True
        assert client.pool_info()['retries'] == 0
        assert len(server.requests) == 2
        client.close()


def test_no_retry_on_a_new_connection():
    def plan(conn_no, n, request):
        return 'close'

    with Scripted(plan) as server:
        client = client_for(server)
        with pytest.raises(ConnectionClosed):
            client.get('/')
        assert client.pool_info()['retries'] == 0
        assert len(server.requests) == 1
        client.close()


def test_no_retry_after_a_timeout():
    # The server may still be working on it.
    plan = second_request('silent')

    with Scripted(plan) as server:
        client = client_for(server, timeout=0.2)
        client.get('/').body.read()
        with pytest.raises(ConnectionTimedOut):
            client.get('/slow')
        assert client.pool_info()['retries'] == 0
        assert len(server.requests) == 2
        client.close()


# --------------------------------------------------------------------------
# Deadlines


def test_response_timeout_bounds_the_whole_response():
    def plan(conn_no, n, request):
        return 'silent'

    with Scripted(plan) as server:
        client = client_for(server, timeout=5, response_timeout=0.2)
        t0 = time.monotonic()
        with pytest.raises(ConnectionTimedOut) as info:
            client.get('/')
        assert 0.15 < time.monotonic() - t0 < 2
        assert str(info.value) == (
            'reading response preamble: no complete response within 0.2 s (response_timeout)'
        )


def test_response_timeout_covers_the_body():
    # Each piece comes well within the per-operation timeout; the whole
    # body does not come within the deadline.
    def app(session, request, api):
        def pieces():
            for _ in range(20):
                time.sleep(0.05)
                yield b'x' * 10

        return (200, 'OK', {}, api.BodyIter(pieces(), 200))

    with TempServer(('127.0.0.1', 0), app, thread=True) as server:
        client = Client(server.address, timeout=1, response_timeout=0.3)
        response = client.get('/')
        t0 = time.monotonic()
        with pytest.raises(ConnectionTimedOut, match='response_timeout'):
            response.body.read()
        assert time.monotonic() - t0 < 1
        assert client.pool_info()['open'] == 0
        # The connection of a bare Connection gets the same deadline.
        with client.connect() as conn:
            assert conn.response_timeout == 0.3
            with pytest.raises(ConnectionTimedOut, match='response_timeout'):
                conn.get('/').body.read()


def test_response_timeout_leaves_a_fast_response_alone(big_server):
    client = Client(big_server.address, response_timeout=5)
    for _ in range(3):
        assert client.get('/big').body.read() == BIG
    assert client.pool_info()['connects'] == 1
    client.close()


def full_listener():
    # A listening socket whose queue is full: a connect() hangs (its SYN is dropped).
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(0)
    filler = socket.create_connection(sock.getsockname(), timeout=WAIT)
    return (sock, filler)


def test_connect_timeout():
    (sock, filler) = full_listener()
    with sock, filler:
        client = Client(sock.getsockname(), connect_timeout=0.2, timeout=5)
        t0 = time.monotonic()
        with pytest.raises(ConnectionTimedOut) as info:
            client.connect()
        assert 0.15 < time.monotonic() - t0 < 2
        assert str(info.value) == (
            f'connecting to {sock.getsockname()!r}: timed out after 0.2 s (connect_timeout)'
        )
        with pytest.raises(ConnectionTimedOut):
            client.get('/')
        assert client.pool_info()['open'] == 0


def test_connect_timeout_bounds_the_tls_handshake():
    # A server that accepts and never says a word.
    with socket.socket() as listener:
        listener.bind(('127.0.0.1', 0))
        listener.listen(4)
        client = SSLClient({}, listener.getsockname(), connect_timeout=0.2, timeout=5)
        t0 = time.monotonic()
        with pytest.raises(ConnectionTimedOut, match=r'^TLS handshake to .*connect_timeout'):
            client.connect()
        assert time.monotonic() - t0 < 2


def test_timeout_options_are_checked():
    for name in ('connect_timeout', 'response_timeout', 'pool_timeout', 'pool_idle_timeout'):
        with pytest.raises(ValueError, match=f'^{name} must be > 0; got 0$'):
            Client(('127.0.0.1', 80), **{name: 0})
    with pytest.raises(ValueError, match=r'^need 1 <= pool_size <= 1000; got 0$'):
        Client(('127.0.0.1', 80), pool_size=0)
    with pytest.raises(TypeError):
        Client(('127.0.0.1', 80), pool_size=2.0)
    client = Client(('127.0.0.1', 80))
    assert (client.connect_timeout, client.response_timeout) == (65, None)
    assert (client.pool_size, client.pool_timeout, client.pool_idle_timeout) == (10, 10.0, 10.0)
    assert Client(('127.0.0.1', 80), timeout=3).connect_timeout == 3


# --------------------------------------------------------------------------
# Many threads, one pool, a server that closes idle connections


def unix_address(tmp_path):
    return str(tmp_path / 'pool.sock')


FAMILIES = {
    'ipv4': lambda tmp_path: ('127.0.0.1', 0),
    'ipv6': lambda tmp_path: ('::1', 0, 0, 0),
    'unix': unix_address,
}


def _ipv6_ok():
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(('::1', 0))
        return True
    except OSError:
        return False


def echo_app(session, request, api):
    body = request.body.read() if request.body else b''
    return (200, 'OK', {'x-port': str(id(session))}, request.method.encode() + b' ' + body)


def open_sockets():
    count = 0
    for name in os.listdir('/proc/self/fd'):
        try:
            if os.readlink(f'/proc/self/fd/{name}').startswith('socket:'):
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_sixteen_threads_share_one_pool(family, tmp_path):
    if family == 'ipv6' and not _ipv6_ok():
        pytest.skip('no IPv6 loopback')
    sessions = set()

    def app(session, request, api):
        sessions.add(id(session))
        return echo_app(session, request, api)

    address = FAMILIES[family](tmp_path)
    with TempServer(address, app, thread=True, max_requests=75000) as server:
        before = open_sockets()
        client = Client(server.address, pool_size=4, timeout=WAIT)
        errors = []
        peak = []

        def work(n):
            rng = random.Random(n)
            try:
                for i in range(625):  # 16 x 625 = 10,000 requests
                    if rng.random() < 0.2:
                        data = f'{n}-{i}'.encode()
                        response = client.post('/', body=data)
                        assert response.body.read() == b'POST ' + data
                    else:
                        response = client.get('/')
                        assert response.body.read() == b'GET '
                    if i % 100 == 0:
                        peak.append(open_sockets() - before)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        info = client.pool_info()
        assert info['connects'] <= 4
        assert info['reuses'] + info['connects'] == 10_000
        assert (info['open'], info['lent'], info['waiting']) == (info['idle'], 0, 0)
        assert len(sessions) == info['connects']
        # The server's end of each connection is in this process too.
        assert max(peak) <= 2 * 4
        client.close()
        assert client.pool_info()['open'] == 0
        deadline = time.monotonic() + WAIT
        while open_sockets() > before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert open_sockets() <= before


@pytest.mark.slow
def test_a_server_closing_idle_connections_at_random():
    # The server closes a connection once it was idle 30 ms; clients pause
    # 0 to 60 ms between requests, so closes race with requests all the
    # time.  Every GET and PUT must succeed (retried when it lost the
    # race); a POST may fail, but only when the server never saw it.
    posted = []
    lock = threading.Lock()

    def app(session, request, api):
        body = request.body.read() if request.body else b''
        if request.method == 'POST':
            with lock:
                posted.append(body)
        return (200, 'OK', {}, body)

    with TempServer(('127.0.0.1', 0), app, thread=True, idle_timeout=0.03) as server:
        client = Client(server.address, pool_size=4, timeout=WAIT)
        failures = []
        sent = []
        errors = []

        def work(n):
            rng = random.Random(n)
            try:
                for i in range(40):
                    time.sleep(rng.uniform(0, 0.06))
                    data = f'{n}-{i}'.encode()
                    kind = rng.choice(('GET', 'PUT', 'POST'))
                    if kind == 'GET':
                        assert client.get('/').body.read() == b''
                    elif kind == 'PUT':
                        assert client.put('/', body=data).body.read() == data
                    else:
                        try:
                            assert client.post('/', body=data).body.read() == data
                            sent.append(data)
                        except ConnectionClosed as e:
                            assert e.response_started is False
                            failures.append(data)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        info = client.pool_info()
        assert info['retries'] + info['stale'] + info['expired'] > 0
        # No POST twice, and none lost without the caller knowing.
        assert sorted(posted) == sorted(sent)
        assert not set(failures) & set(posted)
        client.close()


def test_fork_forgets_the_parents_connections():
    with Scripted(answer) as server:
        client = client_for(server)
        client.get('/').body.read()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports by its exit status
            code = 1
            try:
                info = client.pool_info()
                code = 0 if info['open'] == 0 and client.get('/').body.read() == b'ok' else 2
            finally:
                os._exit(code)
        (_, status) = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's connection was not touched by the child.
        assert client.get('/').body.read() == b'ok'
        assert [r[0] for r in server.requests] == [1, 2, 1]
        client.close()


def test_a_json_body_is_retried(tmp_path):
    plan = second_request('close')

    with Scripted(plan) as server:
        client = client_for(server)
        client.get('/').body.read()
        assert client.put('/doc', json={'a': 1}).status == 200
        assert [r[3] for r in server.requests[1:]] == [b'{"a":1}', b'{"a":1}']
        client.close()


def test_non_file_streams_are_not_resent():
    plan = second_request('close')

    (r, w) = os.pipe()
    os.write(w, b'piped')
    os.close(w)
    with Scripted(plan) as server, open(r, 'rb') as pipe:
        client = client_for(server)
        client.get('/').body.read()
        with pytest.raises(ConnectionClosed):
            client.put('/doc', body=pipe)
        assert client.pool_info()['retries'] == 0
        client.close()
    with pytest.raises(TypeError):
        Client(('127.0.0.1', 80)).put('/', body=io.StringIO('text'))


# --------------------------------------------------------------------------
# Over TLS


@pytest.fixture(scope='module')
def pki():
    from degu.misc import TempPKI

    with TempPKI(client_pki=False) as pki:
        yield pki


def test_tls_pool_shared_by_threads_and_retried_after_idle_close(pki):
    from degu.misc import TempSSLServer

    with TempSSLServer(
        pki.anonymous_server_sslconfig, ('127.0.0.1', 0), echo_app, thread=True, idle_timeout=0.05
    ) as server:
        client = SSLClient(pki.anonymous_client_sslconfig, server.address, pool_size=2)
        errors = []

        def work(n):
            try:
                for i in range(20):
                    data = f'{n}-{i}'.encode()
                    assert client.put('/', body=data).body.read() == b'PUT ' + data
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert client.pool_info()['open'] <= 2
        # Idle past the server's idle_timeout: the server closed them (with
        # a TLS close_notify or without), and the pool sees it before use.
        time.sleep(0.15)
        before = client.pool_info()
        assert client.get('/').body.read() == b'GET '
        info = client.pool_info()
        assert info['stale'] > before['stale']
        assert info['connects'] == before['connects'] + 1
        client.close()
