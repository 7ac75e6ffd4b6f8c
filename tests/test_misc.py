"""Tests for degu.misc and degu.EmbeddedServer (doc/degu.misc.rst).

Live tests run real servers on 127.0.0.1, ::1 and AF_UNIX (path and
abstract), in a child process and in a thread, driven by degu.client and by
raw sockets.  Every test is checked for leaked child processes, threads,
file descriptors and temporary files (the ``no_leaks`` fixture).
"""

import errno
import gc
import io
import logging
import multiprocessing
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import degu
from degu import EmbeddedServer, EmbeddedSSLServer, misc
from degu.base import ChunkedBodyIter, ConnectionClosed, Range, Request, api
from degu.client import Client, SSLClient, build_client_sslctx
from degu.misc import (
    RequestLogger,
    TempPKI,
    TempServer,
    TempSSLServer,
    format_headers,
    format_request,
    format_response,
    mkreq,
    mkuri,
    parse_headers,
    write_chunk,
)
from degu.server import build_server_sslctx

LEAK_GRACE = 5.0  # seconds a finished test may take to let its threads and sockets go
IO_TIMEOUT = 10  # seconds for any socket operation in these tests


# --------------------------------------------------------------------------
# Leak checks


@pytest.fixture(scope='module')
def tmp_root():
    """A private temporary directory for this module, used as tempfile's default.

    Other test files (and other people's tests) may create and remove
    directories in /tmp at the same time, so leaks are looked for here only.
    """
    root = tempfile.mkdtemp(prefix='degu-test-misc.')
    saved = tempfile.tempdir
    tempfile.tempdir = root
    try:
        yield root
    finally:
        tempfile.tempdir = saved
    left = os.listdir(root)
    os.rmdir(root)  # fails if anything was left behind
    assert left == []


def snapshot(tmp_root):
    """What a test could leak: children, threads, fds and temporary files."""
    return {
        'processes': {p.pid for p in multiprocessing.active_children()},
        'threads': {t for t in threading.enumerate()},
        'fds': open_fds(),
        'tempfiles': set(os.listdir(tmp_root)),
    }


def open_fds():
    """The open file descriptors, without the one that listed them."""
    fds = set()
    for name in os.listdir('/proc/self/fd'):
        try:
            os.readlink(f'/proc/self/fd/{name}')
        except FileNotFoundError:  # the directory listing's own fd, closed by now
            continue
        fds.add(name)
    return fds


def leaks(before, after):
    """Whatever is in *after* but was not in *before*, by kind."""
    found = {}
    for kind in before:
        extra = after[kind] - before[kind]
        if extra:
            found[kind] = sorted(map(str, extra))
    return found


def fd_targets(fds):
    targets = []
    for fd in sorted(fds, key=int):
        try:
            targets.append(f'{fd} -> {os.readlink(f"/proc/self/fd/{fd}")}')
        except OSError:
            targets.append(fd)
    return targets


@pytest.fixture(autouse=True)
def no_leaks(tmp_root, pki):
    """Fail a test that leaves a child process, thread, fd or temp file behind."""
    gc.collect()
    before = snapshot(tmp_root)
    yield
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        gc.collect()
        found = leaks(before, snapshot(tmp_root))
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.02)  # polling, bounded by LEAK_GRACE: threads need a moment to exit
    if 'fds' in found:
        found['fds'] = fd_targets(found['fds'])
    assert found == {}, f'leaked: {found!r}'


def test_leak_check_sees_leaks(tmp_root):
    before = snapshot(tmp_root)
    sock = socket.socket()
    event = threading.Event()
    thread = threading.Thread(target=event.wait, args=(IO_TIMEOUT,))
    thread.start()
    fd = os.open(os.path.join(tmp_root, 'leak'), os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        found = leaks(before, snapshot(tmp_root))
        assert set(found) == {'threads', 'fds', 'tempfiles'}
        assert found['tempfiles'] == ['leak']
        assert str(sock.fileno()) in found['fds'] and str(fd) in found['fds']
    finally:
        event.set()
        thread.join(IO_TIMEOUT)
        sock.close()
        os.close(fd)
        os.unlink(os.path.join(tmp_root, 'leak'))
    assert leaks(before, snapshot(tmp_root)) == {}


# --------------------------------------------------------------------------
# Apps (module level, so they would also work with a spawn context)


def hello_app(session, request, api):
    return (200, 'OK', {'x-pid': str(os.getpid())}, b'hello, ' + request.uri.encode())


def echo_app(session, request, api):
    body = request.body.read() if request.body is not None else b''
    return (200, 'OK', {'x-method': request.method}, body)


class TLSInfoApp:
    """Records the TLS version and the peer certificate's subject in on_connect."""

    def on_connect(self, session, sock):
        session.store['version'] = sock.version()
        cert = sock.getpeercert()
        subject = dict(item[0] for item in cert['subject']) if cert else {}
        session.store['peer'] = subject.get('commonName', '')
        return True

    def __call__(self, session, request, api):
        body = f'{session.store["version"]} {session.store["peer"]}'.encode()
        return (200, 'OK', {}, body)


def build_hello(greeting, punctuation='!'):
    def app(session, request, api):
        return (200, 'OK', {'x-pid': str(os.getpid())}, f'{greeting}{punctuation}'.encode())

    return app


def build_raises(message):
    raise ValueError(message)


def build_exits(code):
    os._exit(code)


# --------------------------------------------------------------------------
# Address families


@pytest.fixture(scope='module')
def pki(tmp_root):
    """One TempPKI (2048-bit keys, so TLS accepts them) for the whole module."""
    with TempPKI() as pki:
        yield pki
    assert not os.path.exists(pki.ssldir)


def unix_path():
    return os.path.join(tempfile.gettempdir(), f'degu.{os.getpid()}.{time.monotonic_ns()}.sock')


ADDRESSES = {
    'ipv4': lambda: ('127.0.0.1', 0),
    'ipv6': lambda: ('::1', 0, 0, 0),
    'unix': unix_path,
    'abstract': lambda: b'',
}
FAMILIES = sorted(ADDRESSES)
VARIANTS = [pytest.param(False, id='process'), pytest.param(True, id='thread')]


def check_bound(given, bound):
    """The bound address is what a client needs: a real port or name."""
    if type(given) is tuple:
        assert type(bound) is tuple
        assert len(bound) == len(given)
        assert bound[0] == given[0]
        assert bound[1] > 0
    elif type(given) is str:
        assert bound == given
    else:
        assert type(bound) is bytes
        assert bound.startswith(b'\x00') and len(bound) > 1


def raw_request(address, data, *, family=None):
    """Send *data* on a fresh plain socket and read the reply to EOF."""
    if family is None:
        if type(address) is tuple:
            family = socket.AF_INET if len(address) == 2 else socket.AF_INET6
        else:
            family = socket.AF_UNIX
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(IO_TIMEOUT)
        sock.connect(address)
        sock.sendall(data)
        received = []
        while True:
            piece = sock.recv(65536)
            if not piece:
                return b''.join(received)
            received.append(piece)


def get(client, uri='/'):
    conn = client.connect()
    try:
        response = conn.get(uri, {})
        body = response.body.read() if response.body is not None else None
        return (response.status, response.reason, response.headers, body)
    finally:
        conn.close()


def assert_refused(address):
    family = (
        socket.AF_UNIX
        if type(address) is not tuple
        else socket.AF_INET if len(address) == 2 else socket.AF_INET6
    )
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(IO_TIMEOUT)
        with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
            sock.connect(address)


# --------------------------------------------------------------------------
# TempServer


@pytest.mark.parametrize('thread', VARIANTS)
@pytest.mark.parametrize('family', FAMILIES)
def test_tempserver_live(family, thread):
    given = ADDRESSES[family]()
    server = TempServer(given, hello_app, thread=thread)
    try:
        check_bound(given, server.address)
        assert server.app is hello_app
        assert server.options == {}
        if thread:
            assert server.process is None
            assert server.thread.is_alive() and server.thread.daemon
            assert server.server.address == server.address
        else:
            assert server.thread is None and server.server is None
            assert server.process.is_alive() and server.process.daemon
            assert server.process.pid != os.getpid()
        # Through our client, twice on one connection:
        client = Client(server.address, timeout=IO_TIMEOUT)
        conn = client.connect()
        try:
            for uri in ('/a', '/b?c'):
                response = conn.get(uri, {})
                assert (response.status, response.reason) == (200, 'OK')
                assert response.body.read() == b'hello, ' + uri.encode()
                served_by = int(response.headers['x-pid'])
                assert (served_by == os.getpid()) is thread
        finally:
            conn.close()
        # And with hand-written bytes:
        reply = raw_request(
            server.address, b'GET /raw HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n'
        )
        assert reply.startswith(b'HTTP/1.1 200 OK\r\n')
        assert reply.endswith(b'\r\n\r\nhello, /raw')
    finally:
        server.terminate()
    # what ran the server stays, for a look at how it ended (as in Degu)
    if thread:
        assert server.process is None
        assert not server.thread.is_alive() and server.server.address == server.address
    else:
        assert (server.thread, server.server) == (None, None)
        assert server.process.is_alive() is False
        assert server.process.exitcode == -signal.SIGTERM
    assert_refused(server.address)
    if family == 'unix':
        assert not os.path.exists(server.address)  # the socket file is removed
    server.terminate()  # idempotent
    if not thread:
        assert server.process.exitcode == -signal.SIGTERM


@pytest.mark.parametrize('thread', VARIANTS)
def test_tempserver_context_manager(thread):
    with TempServer(('127.0.0.1', 0), hello_app, thread=thread) as server:
        assert isinstance(server, TempServer)
        assert get(Client(server.address, timeout=IO_TIMEOUT))[:2] == (200, 'OK')
    assert_refused(server.address)


@pytest.mark.parametrize('thread', VARIANTS)
def test_tempserver_close_alias(thread):
    server = TempServer(b'', hello_app, thread=thread)
    assert TempServer.close is TempServer.terminate
    server.close()
    assert_refused(server.address)


@pytest.mark.parametrize('thread', VARIANTS)
def test_tempserver_garbage_collected(thread):
    server = TempServer(('127.0.0.1', 0), hello_app, thread=thread)
    address = server.address
    if thread:
        worker = server.thread
    else:
        pid = server.process.pid
        assert pid in {p.pid for p in multiprocessing.active_children()}
    del server
    gc.collect()
    if thread:
        assert not worker.is_alive()
    else:
        assert pid not in {p.pid for p in multiprocessing.active_children()}
    assert_refused(address)


@pytest.mark.parametrize('thread', VARIANTS)
def test_tempserver_options(thread):
    with TempServer(('127.0.0.1', 0), hello_app, thread=thread, max_requests=1) as server:
        assert server.options == {'max_requests': 1}  # 'thread' never reaches Server
        if thread:
            assert server.server.max_requests == 1
        conn = Client(server.address, timeout=IO_TIMEOUT).connect()
        try:
            response = conn.get('/', {})
            assert response.headers['connection'] == 'close'  # max_requests reached
            assert response.body.read() == b'hello, /'
        finally:
            conn.close()


@pytest.mark.parametrize('thread', VARIANTS)
def test_tempserver_bad_options(thread):
    with pytest.raises(TypeError) as e:
        TempServer(('127.0.0.1', 0), hello_app, thread=thread, foo=1, bar=2)
    assert str(e.value) == 'unsupported Server() **options: bar, foo'
    with pytest.raises(TypeError) as e:
        TempServer(('127.0.0.1', 0), 'not callable', thread=thread)
    assert str(e.value) == "app: not callable: 'not callable'"
    with pytest.raises(ValueError) as e:
        TempServer('relative.sock', hello_app, thread=thread)
    assert str(e.value) == "address: bad socket filename: 'relative.sock'"


def test_tempserver_thread_keyword():
    with pytest.raises(TypeError) as e:
        TempServer(('127.0.0.1', 0), hello_app, thread=1)
    assert str(e.value) == "thread: need a <class 'bool'>; got a <class 'int'>: 1"
    with pytest.raises(TypeError):
        TempServer(('127.0.0.1', 0), hello_app, True)  # keyword-only


@pytest.mark.parametrize('thread', VARIANTS)
@pytest.mark.parametrize('family', ['ipv4', 'ipv6'])
def test_tempserver_bind_error_in_parent(family, thread):
    """A port in use: the bind error is raised by the constructor, here."""
    inet = socket.AF_INET if family == 'ipv4' else socket.AF_INET6
    with socket.socket(inet, socket.SOCK_STREAM) as taken:
        taken.bind(ADDRESSES[family]())
        taken.listen(1)
        with pytest.raises(OSError) as e:
            TempServer(taken.getsockname(), hello_app, thread=thread)
        assert e.value.errno == errno.EADDRINUSE
        assert type(e.value) is OSError


@pytest.mark.parametrize('thread', VARIANTS)
def test_tempserver_bind_error_unix(thread):
    path = unix_path()
    with open(path, 'wb'):
        pass
    try:
        with pytest.raises(OSError) as e:
            TempServer(path, hello_app, thread=thread)
        assert e.value.errno == errno.EADDRINUSE
        assert os.path.isfile(path)  # not a socket: never removed
    finally:
        os.unlink(path)


def test_tempserver_thread_closure():
    """A thread-backed server shares state with the test."""
    seen = []

    def app(session, request, api):
        seen.append((request.method, request.uri))
        return (200, 'OK', {}, None)

    with TempServer(('127.0.0.1', 0), app, thread=True) as server:
        conn = Client(server.address, timeout=IO_TIMEOUT).connect()
        try:
            assert conn.get('/one', {}).body.read() == b''  # content-length: 0
            conn.put('/two', {}, b'ignored')
        finally:
            conn.close()
    assert seen == [('GET', '/one'), ('PUT', '/two')]


class BrokenServer:
    def serve_forever(self):
        raise RuntimeError('broken')


def test_tempserver_thread_reports_serve_forever_error(caplog):
    """What serve_forever() raised in the thread is raised by terminate()."""
    server = TempServer(('127.0.0.1', 0), hello_app, thread=True)
    misc._serve_thread(BrokenServer(), server._state)  # what the thread does on failure
    assert [r.getMessage() for r in caplog.records if r.name == 'degu.misc'] == [
        f'{BrokenServer()!r}: serve_forever() failed'.split(' object at ')[0] + ' object at '
        + caplog.records[-1].getMessage().split(' object at ')[1]
    ]
    with pytest.raises(RuntimeError) as e:
        server.terminate()
    assert str(e.value) == 'broken'
    assert not server.thread.is_alive()  # the real server was stopped all the same
    assert_refused(server.address)
    server.terminate()  # reported once


def test_tempserver_repr():
    with TempServer(b'', hello_app, thread=True) as server:
        assert repr(server) == f'TempServer({server.address!r}, test_misc.hello_app)'


# --------------------------------------------------------------------------
# TempSSLServer


@pytest.mark.parametrize('thread', VARIANTS)
@pytest.mark.parametrize('family', FAMILIES)
def test_tempsslserver_live(pki, family, thread):
    given = ADDRESSES[family]()
    with TempSSLServer(pki.server_sslconfig, given, TLSInfoApp(), thread=thread) as server:
        check_bound(given, server.address)
        assert server.sslconfig == pki.server_sslconfig
        assert (server.process is None) is thread
        client = SSLClient(pki.client_sslconfig, server.address, timeout=IO_TIMEOUT)
        (status, reason, headers, body) = get(client)
        assert (status, reason) == (200, 'OK')
        # TLS 1.3 by default, and the server saw our client certificate (doc/decisions.rst,
        # 'TLS').
        assert body == f'TLSv1.3 {pki.client_id}'.encode()
    assert_refused(server.address)
    if family == 'unix':
        assert not os.path.exists(server.address)


def tls_handshake(address, sslconfig, **kw):
    """A raw TLS connection with a client context from *sslconfig*; returns the socket."""
    ctx = build_client_sslctx(sslconfig)
    for key, value in kw.items():
        setattr(ctx, key, value)
    sock = socket.create_connection(address, timeout=IO_TIMEOUT)
    try:
        return ctx.wrap_socket(sock)
    except BaseException:
        sock.close()
        raise


def assert_client_refused(address, sslconfig):
    """The server ends the connection without answering a request."""
    client = SSLClient(sslconfig, address, timeout=IO_TIMEOUT)
    with pytest.raises((ConnectionClosed, ssl.SSLError)) as e:
        get(client)
    assert not isinstance(e.value, TimeoutError)  # refused, not ignored
    return e.value


@pytest.mark.parametrize('thread', VARIANTS)
def test_mutual_tls(pki, thread):
    with TempSSLServer(pki.server_sslconfig, ('127.0.0.1', 0), TLSInfoApp(), thread=thread) as s:
        # The right client certificate: accepted.
        client = SSLClient(pki.client_sslconfig, s.address, timeout=IO_TIMEOUT)
        assert get(client)[3] == f'TLSv1.3 {pki.client_id}'.encode()
        # No client certificate: refused.
        assert_client_refused(s.address, pki.anonymous_client_sslconfig)
        # A certificate from another CA (the server CA signed this one): refused.
        other = pki.anonymous_client_sslconfig
        other['cert_file'] = pki.path(pki.server_id, 'cert')
        other['key_file'] = pki.path(pki.server_id, 'key')
        assert_client_refused(s.address, other)
        # And the right one still works afterwards.
        assert get(client)[:2] == (200, 'OK')


def test_other_ca_refused_only_for_its_ca(pki):
    """Control for test_mutual_tls: the same certificate passes where its CA is trusted."""
    config = pki.get_server_sslconfig(pki.server_id, pki.server_ca_id)
    with TempSSLServer(config, ('127.0.0.1', 0), TLSInfoApp(), thread=True) as server:
        other = pki.anonymous_client_sslconfig
        other['cert_file'] = pki.path(pki.server_id, 'cert')
        other['key_file'] = pki.path(pki.server_id, 'key')
        client = SSLClient(other, server.address, timeout=IO_TIMEOUT)
        assert get(client)[3] == f'TLSv1.3 {pki.server_id}'.encode()


def test_tls13_by_default_and_tls12_allowed(pki):
    with TempSSLServer(pki.server_sslconfig, ('127.0.0.1', 0), TLSInfoApp()) as server:
        with tls_handshake(server.address, pki.client_sslconfig) as sock:
            assert sock.version() == 'TLSv1.3'
        # TLS 1.2 is still accepted, with an ECDHE + AEAD cipher (doc/decisions.rst, 'TLS').
        with tls_handshake(
            server.address, pki.client_sslconfig, maximum_version=ssl.TLSVersion.TLSv1_2
        ) as sock:
            assert sock.version() == 'TLSv1.2'
            assert sock.cipher()[0].startswith('ECDHE-')
    # ... but nothing older.
    ctx = build_server_sslctx(pki.server_sslconfig)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED


def test_anonymous_tls(pki):
    app = TLSInfoApp()
    with TempSSLServer(pki.anonymous_server_sslconfig, b'', app, thread=True) as server:
        client = SSLClient(pki.anonymous_client_sslconfig, server.address, timeout=IO_TIMEOUT)
        assert get(client)[3] == b'TLSv1.3 '
        # A client that does not trust the server CA refuses the server.
        stranger = {'ca_file': pki.path(pki.client_ca_id, 'ca'), 'check_hostname': False}
        with pytest.raises(ssl.SSLCertVerificationError):
            get(SSLClient(stranger, server.address, timeout=IO_TIMEOUT))


@pytest.mark.parametrize('thread', VARIANTS)
def test_tempsslserver_errors(pki, thread):
    with pytest.raises(TypeError) as e:
        TempSSLServer(build_server_sslctx(pki.server_sslconfig), b'', hello_app, thread=thread)
    assert str(e.value).startswith(
        "sslconfig: need a <class 'dict'>; got a <class 'ssl.SSLContext'>"
    )
    with pytest.raises(ValueError) as e:
        config = pki.anonymous_server_sslconfig
        del config['allow_unauthenticated_clients']
        TempSSLServer(config, b'', hello_app, thread=thread)
    assert str(e.value) == 'must include ca_file or ca_path (or allow_unauthenticated_clients)'
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        with pytest.raises(OSError) as e:
            TempSSLServer(pki.server_sslconfig, taken.getsockname(), hello_app, thread=thread)
        assert e.value.errno == errno.EADDRINUSE


def test_tempsslserver_repr(pki):
    config = pki.server_sslconfig
    with TempSSLServer(config, b'', hello_app, thread=True) as server:
        assert repr(server) == (
            f'TempSSLServer({config!r}, {server.address!r}, test_misc.hello_app)'
        )


# --------------------------------------------------------------------------
# EmbeddedServer, EmbeddedSSLServer


@pytest.mark.parametrize('family', FAMILIES)
def test_embeddedserver(family):
    given = ADDRESSES[family]()
    with EmbeddedServer(given, build_hello, 'Hi', '?', max_requests=5) as server:
        check_bound(given, server.address)
        assert server.build_func is build_hello
        assert server.build_args == ('Hi', '?')
        assert server.options == {'max_requests': 5}
        assert server.process.daemon
        (status, reason, headers, body) = get(Client(server.address, timeout=IO_TIMEOUT))
        assert (status, body) == (200, b'Hi?')
        assert int(headers['x-pid']) == server.process.pid  # built in the child
        process = server.process
    assert server.process is process  # kept after terminate(), as in Degu
    assert process.is_alive() is False and process.exitcode == -signal.SIGTERM
    assert_refused(server.address)
    server.terminate()  # idempotent
    assert server.process is process and process.exitcode == -signal.SIGTERM


def test_embeddedserver_errors(capfd):
    with pytest.raises(TypeError) as e:
        EmbeddedServer(b'', 'nope')
    assert str(e.value) == "build_func: not callable: 'nope'"
    # An exception in build_func is raised in the parent, and the child is gone.
    with pytest.raises(ValueError) as e:
        EmbeddedServer(b'', build_raises, 'no app today')
    assert str(e.value) == 'no app today'
    with pytest.raises(TypeError) as e:
        EmbeddedServer(b'', build_hello, 'x', timeout='soon')
    assert str(e.value) == (
        "timeout: need a (<class 'int'>, <class 'float'>); got a <class 'str'>: 'soon'"
    )
    # A child that dies before reporting: noticed at once, not after a timeout.
    start = time.monotonic()
    with pytest.raises(RuntimeError) as e:
        EmbeddedServer(b'', build_exits, 3)
    assert str(e.value) == 'server process exited before reporting its address (exitcode 3)'
    assert time.monotonic() - start < degu.START_TIMEOUT / 2
    # The children said nothing: their errors are the parent's to report.
    assert capfd.readouterr().err == ''


def test_mp_context():
    ctx = degu._mp_context()
    expected = 'fork' if sys.platform.startswith('linux') else 'spawn'
    assert ctx.get_start_method() == expected


@pytest.fixture(scope='module')
def resource_tracker():
    """spawn starts multiprocessing's resource tracker once per interpreter, and
    keeps a pipe to it open: start it before the leak check looks."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def test_spawn_context(monkeypatch, resource_tracker):
    """Where fork is not used, module-level apps and build functions still work."""
    monkeypatch.setattr(degu, '_mp_context', lambda: multiprocessing.get_context('spawn'))
    with TempServer(('127.0.0.1', 0), hello_app) as server:
        (status, reason, headers, body) = get(Client(server.address, timeout=IO_TIMEOUT))
        assert body == b'hello, /'
        assert int(headers['x-pid']) == server.process.pid
    with EmbeddedServer(b'', build_hello, 'spawned') as server:
        assert get(Client(server.address, timeout=IO_TIMEOUT))[3] == b'spawned!'
    with pytest.raises(ValueError) as e:
        EmbeddedServer(b'', build_raises, 'pickled across')
    assert str(e.value) == 'pickled across'


def test_embeddedserver_unpicklable_error():
    class LocalError(Exception):
        pass

    def build():
        raise LocalError('local')

    with pytest.raises(RuntimeError) as e:
        EmbeddedServer(b'', build)
    assert str(e.value).startswith('LocalError: local; (unpicklable: ')


def test_embeddedserver_garbage_collected():
    server = EmbeddedServer(b'', build_hello, 'x')
    (pid, address) = (server.process.pid, server.address)
    del server
    gc.collect()
    assert pid not in {p.pid for p in multiprocessing.active_children()}
    assert_refused(address)


def test_embeddedsslserver(pki):
    with EmbeddedSSLServer(pki.server_sslconfig, ('::1', 0, 0, 0), TLSInfoApp) as server:
        assert server.sslconfig == pki.server_sslconfig
        assert server.build_args == ()
        client = SSLClient(pki.client_sslconfig, server.address, timeout=IO_TIMEOUT)
        assert get(client)[3] == f'TLSv1.3 {pki.client_id}'.encode()
        assert_client_refused(server.address, pki.anonymous_client_sslconfig)
        assert repr(server) == (
            f'EmbeddedSSLServer({pki.server_sslconfig!r}, {server.address!r}, '
            'test_misc.TLSInfoApp)'
        )
    with pytest.raises(TypeError) as e:
        EmbeddedSSLServer([], b'', TLSInfoApp)
    assert str(e.value) == "sslconfig: need a <class 'dict'>; got a <class 'list'>: []"


def test_embeddedserver_repr():
    with EmbeddedServer(b'', build_hello, 'x') as server:
        assert repr(server) == f'EmbeddedServer({server.address!r}, test_misc.build_hello)'


def test_import_degu_is_cheap():
    code = (
        'import sys\n'
        'before = set(sys.modules)\n'
        'import degu\n'
        'heavy = ("multiprocessing", "ssl", "socket", "threading", "subprocess")\n'
        'new = set(sys.modules) - before\n'
        'loaded = [m for m in new if m.startswith("degu.") or m in heavy]\n'
        'print(sorted(loaded))\n'
        'print(degu.EmbeddedServer.__name__, degu.EmbeddedSSLServer.__name__)\n'
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(degu.__file__)))
    result = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == '[]\nEmbeddedServer EmbeddedSSLServer\n'


def test_degu_all():
    for name in ('EmbeddedServer', 'EmbeddedSSLServer', 'IPv4_LOOPBACK', 'ADDRESS_CONSTANTS'):
        assert name in degu.__all__
    assert set(misc.__all__) <= set(dir(misc))


# --------------------------------------------------------------------------
# TempPKI


def test_temppki(pki):
    assert isinstance(pki, degu.sslhelpers.PKI)
    assert os.path.basename(pki.ssldir).startswith('TempPKI.')
    assert os.path.dirname(pki.ssldir) == tempfile.gettempdir()
    ids = (pki.server_ca_id, pki.server_id, pki.client_ca_id, pki.client_id)
    assert len(set(ids)) == 4
    assert pki.client_pki is True
    assert not pki.closed
    assert pki.server_sslconfig == {
        'cert_file': pki.path(pki.server_id, 'cert'),
        'key_file': pki.path(pki.server_id, 'key'),
        'ca_file': pki.path(pki.client_ca_id, 'ca'),
    }
    assert pki.client_sslconfig == {
        'ca_file': pki.path(pki.server_ca_id, 'ca'),
        'check_hostname': False,
        'cert_file': pki.path(pki.client_id, 'cert'),
        'key_file': pki.path(pki.client_id, 'key'),
    }
    assert pki.anonymous_server_sslconfig == {
        'cert_file': pki.path(pki.server_id, 'cert'),
        'key_file': pki.path(pki.server_id, 'key'),
        'allow_unauthenticated_clients': True,
    }
    assert pki.anonymous_client_sslconfig == {
        'ca_file': pki.path(pki.server_ca_id, 'ca'),
        'check_hostname': False,
    }
    # New dicts every time.
    assert pki.server_sslconfig is not pki.server_sslconfig
    for config in (pki.server_sslconfig, pki.client_sslconfig):
        for key in ('cert_file', 'key_file', 'ca_file'):
            assert os.path.isfile(config[key])
    # They build the contexts the server and client want.
    assert build_server_sslctx(pki.server_sslconfig).verify_mode == ssl.CERT_REQUIRED
    assert build_client_sslctx(pki.client_sslconfig).check_hostname is False


def test_temppki_cleanup():
    # close(), with, garbage collection: the directory goes each time.
    pki = TempPKI(client_pki=False, bits=1024)
    ssldir = pki.ssldir
    assert (pki.client_ca_id, pki.client_id) == (None, None)
    assert sorted(os.listdir(ssldir)) == sorted(
        [f'{pki.server_ca_id}.{ext}' for ext in ('key', 'ca', 'srl')]
        + [f'{pki.server_id}.{ext}' for ext in ('key', 'csr', 'cert')]
    )
    assert pki.anonymous_server_sslconfig['cert_file'].startswith(ssldir)
    with pytest.raises(ValueError) as e:
        pki.server_sslconfig
    assert str(e.value) == 'TempPKI(client_pki=False) has no client CA or certificate'
    with pytest.raises(ValueError):
        pki.client_sslconfig
    pki.close()
    assert pki.closed and not os.path.exists(ssldir)
    pki.close()  # idempotent

    with TempPKI(client_pki=False, bits=1024) as pki:
        ssldir = pki.ssldir
        assert os.path.isdir(ssldir)
    assert not os.path.exists(ssldir)

    pki = TempPKI(client_pki=False, bits=1024)
    ssldir = pki.ssldir
    del pki
    gc.collect()
    assert not os.path.exists(ssldir)


def test_temppki_not_removed_by_forked_child():
    with TempPKI(client_pki=False, bits=1024) as pki:
        ctx = multiprocessing.get_context('fork')
        process = ctx.Process(target=pki.close)
        process.start()
        process.join(IO_TIMEOUT)
        assert process.exitcode == 0
        process.close()
        assert os.path.isdir(pki.ssldir)  # only the creator removes it
    assert not os.path.exists(pki.ssldir)


def test_temppki_errors():
    with pytest.raises(TypeError) as e:
        TempPKI(client_pki=1)
    assert str(e.value) == "client_pki: need a <class 'bool'>; got a <class 'int'>: 1"
    before = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(ValueError):
        TempPKI(bits=1000)
    assert set(os.listdir(tempfile.gettempdir())) == before  # nothing left on failure


# --------------------------------------------------------------------------
# mkreq, mkuri


@pytest.mark.parametrize(
    ('uri', 'path', 'query'),
    [
        ('/', [], None),
        ('/?', [], ''),
        ('/?k=v', [], 'k=v'),
        ('/foo', ['foo'], None),
        ('/foo/', ['foo', ''], None),
        ('/foo/bar', ['foo', 'bar'], None),
        ('/foo/bar?a=1&b=2', ['foo', 'bar'], 'a=1&b=2'),
        ('/foo?a?b', ['foo'], 'a?b'),  # split on the first '?'
        ('/a%20b/..', ['a%20b', '..'], None),  # no validation, no decoding
    ],
)
def test_mkreq(uri, path, query):
    request = mkreq('GET', uri)
    assert type(request) is Request
    assert (request.method, request.uri, request.headers, request.body) == ('GET', uri, {}, None)
    assert (request.mount, request.path, request.query) == ([], path, query)
    # Building the URI back from the parts gives the input.
    assert mkuri(*path, query=query) == uri
    assert request.build_proxy_uri() == uri


@pytest.mark.parametrize(
    ('shift', 'mount', 'path'),
    [(0, [], ['a', 'b', 'c']), (1, ['a'], ['b', 'c']), (3, ['a', 'b', 'c'], [])],
)
def test_mkreq_shift(shift, mount, path):
    request = mkreq('PUT', '/a/b/c?q', shift=shift)
    assert (request.mount, request.path, request.query) == (mount, path, 'q')


def test_mkreq_asterisk():
    request = mkreq('OPTIONS', '*')
    assert (request.uri, request.mount, request.path, request.query) == ('*', [], [], None)


def test_mkreq_arguments():
    headers = {'content-length': 3}
    body = api.Body(io.BytesIO(b'abc'), 3)
    request = mkreq('POST', '/x', headers, body)
    assert request.headers is headers and request.body is body
    assert mkreq('GET', '/').headers is not mkreq('GET', '/').headers  # a new dict each time

    class MyRequest(Request):
        __slots__ = ()

    assert type(mkreq('GET', '/a', cls=MyRequest)) is MyRequest
    with pytest.raises(ValueError) as e:
        mkreq('GET', '/a/b', shift=3)
    assert str(e.value) == 'need 0 <= shift <= 2; got 3'
    with pytest.raises(ValueError) as e:
        mkreq('GET', '/a', shift=-1)
    assert str(e.value) == 'need 0 <= shift <= 1; got -1'
    with pytest.raises(TypeError) as e:
        mkreq('GET', '/a', shift='1')
    assert str(e.value) == "shift: need a <class 'int'>; got a <class 'str'>: '1'"
    with pytest.raises(ValueError) as e:
        mkreq('FOO', '/')
    assert str(e.value) == "bad method: 'FOO'"


# a range value given to mkreq() -> what the request holds, as the server parses it
MKREQ_RANGES = [
    (Range(0, 5), Range(0, 5)),
    ('bytes=0-4', Range(0, 5)),
    (b'bytes=0-4', Range(0, 5)),
    ('bytes=10-', Range(10, 9999999999999999)),
    ('bytes=-500', Range(-500, None)),
    (Range(-500, None), Range(-500, None)),
    # dropped as if absent (RFC 9110 section 14.2)
    ('bytes=0-1,3-4', None),
    ('items=0-4', None),
    ('bytes=4-0', None),
    ('bytes=-0', None),
    ('bytes=\u0100-1', None),
    ('', None),
]


@pytest.mark.parametrize(('given', 'expected'), MKREQ_RANGES)
def test_mkreq_range(given, expected):
    headers = {'range': given, 'x': 'y'}
    request = mkreq('GET', '/', headers)
    if expected is None:
        assert request.headers == {'x': 'y'}
    else:
        assert request.headers == {'range': expected, 'x': 'y'}
        assert type(request.headers['range']) is Range
    assert headers == {'range': given, 'x': 'y'}  # the caller's dict is left alone
    if type(given) is Range:
        assert request.headers is headers  # nothing to change: the same dict


def test_mkreq_host():
    # mkreq() adds nothing: a test of a host-dependent app passes its own host
    assert mkreq('GET', '/').headers == {}
    request = mkreq('GET', '/', {'host': 'example.com'})
    assert request.headers == {'host': 'example.com'}


@pytest.mark.parametrize(
    ('path', 'query', 'uri'),
    [
        ((), None, '/'),
        ((), '', '/?'),
        (('',), None, '/'),
        (('foo',), None, '/foo'),
        (('foo', ''), None, '/foo/'),
        (('foo', 'bar'), 'k=v', '/foo/bar?k=v'),
    ],
)
def test_mkuri(path, query, uri):
    assert mkuri(*path, query=query) == uri


# --------------------------------------------------------------------------
# parse_headers, format_*, write_chunk


def test_parse_headers_is_the_engine_parser():
    from degu import base

    assert parse_headers is base.parse_headers
    assert parse_headers(b'') == {}
    assert parse_headers(b'Content-Range: bytes 0-1/5', isresponse=True) == {
        'content-range': base.ContentRange(0, 2, 5)
    }


@pytest.mark.parametrize(
    ('headers', 'src'),
    [
        ({}, b''),
        ({'a': '1'}, b'a: 1'),
        ({'b': '2', 'a': '1'}, b'a: 1\r\nb: 2'),
        ({'content-length': 17}, b'content-length: 17'),
        ({'Mixed-Case': 'kept'}, b'Mixed-Case: kept'),  # no validation
        ({'x': 'caf\xe9'}, b'x: caf\xe9'),  # latin-1
        ({'x': 'a\r\nb'}, b'x: a\r\nb'),  # really no validation: tests can inject
    ],
)
def test_format_headers(headers, src):
    assert format_headers(headers) == src


def test_format_headers_round_trip():
    headers = {'content-length': 12, 'accept': 'text/plain', 'x-long': 'a' * 200}
    assert parse_headers(format_headers(headers)) == headers


@pytest.mark.parametrize(
    ('args', 'src'),
    [
        (('GET', '/', {}), b'GET / HTTP/1.1'),
        (('PUT', '/a?b', {'content-length': 3}), b'PUT /a?b HTTP/1.1\r\ncontent-length: 3'),
        (('POST', '/', {'b': 'y', 'a': 'x'}), b'POST / HTTP/1.1\r\na: x\r\nb: y'),
    ],
)
def test_format_request(args, src):
    assert format_request(*args) == src


@pytest.mark.parametrize(
    ('args', 'src'),
    [
        ((200, 'OK', {}), b'HTTP/1.1 200 OK'),
        ((404, 'Not Found', {'content-length': 0}),
         b'HTTP/1.1 404 Not Found\r\ncontent-length: 0'),
        ((204, 'No Content', {'b': 'y', 'a': 'x'}), b'HTTP/1.1 204 No Content\r\na: x\r\nb: y'),
    ],
)
def test_format_response(args, src):
    assert format_response(*args) == src


def test_format_request_live():
    """format_request() bytes, sent raw, are understood by the server."""
    with TempServer(b'', echo_app, thread=True) as server:
        headers = {'host': 'a', 'content-length': 5, 'connection': 'close'}
        preamble = format_request('PUT', '/up', headers)
        reply = raw_request(server.address, preamble + b'\r\n\r\nhello')
    assert reply.startswith(b'HTTP/1.1 200 OK\r\n')
    assert b'\r\nx-method: PUT\r\n' in reply
    assert reply.endswith(b'\r\n\r\nhello')


class ShortWriter:
    def __init__(self, limit):
        self.limit = limit

    def write(self, data):
        return min(len(data), self.limit)


@pytest.mark.parametrize(
    ('chunk', 'src'),
    [
        ((None, b''), b'0\r\n\r\n'),
        ((None, b'hello'), b'5\r\nhello\r\n'),
        ((('k', 'v'), b'hello'), b'5;k=v\r\nhello\r\n'),
        ((('k', 'a b'), b''), b'0;k="a b"\r\n\r\n'),
        ((None, b'x' * 26), b'1a\r\n' + b'x' * 26 + b'\r\n'),
    ],
)
def test_write_chunk(chunk, src):
    out = io.BytesIO()
    assert write_chunk(out, chunk) == len(src)
    assert out.getvalue() == src


def test_write_chunk_errors():
    out = io.BytesIO()
    cases = [
        ([None, b''], TypeError,
         "chunk: need a <class 'tuple'>; got a <class 'list'>: [None, b'']"),
        ((None,), ValueError, 'chunk: need a 2-tuple; got a 1-tuple'),
        ((None, b'', b''), ValueError, 'chunk: need a 2-tuple; got a 3-tuple'),
        ((None, 'text'), TypeError,
         "chunk data: need a <class 'bytes'>; got a <class 'str'>"),
        ((None, b'x' * (16 * 1024 * 1024 + 1)), ValueError,
         'need len(chunk data) <= 16777216; got 16777217'),
        ((('bad key', 'v'), b'x'), ValueError, "bad chunk extension name: 'bad key'"),
    ]  # fmt: skip
    for chunk, error, message in cases:
        with pytest.raises(error) as e:
            write_chunk(out, chunk)
        assert str(e.value) == message
    assert out.getvalue() == b''  # nothing written on a bad chunk
    with pytest.raises(ValueError) as e:
        write_chunk(ShortWriter(3), (None, b'hello'))
    assert str(e.value) == 'expected to write 10 bytes, but sent 3'


def test_write_chunk_parses_back():
    """Chunks written by write_chunk() read back through ChunkedBody."""
    chunks = [(None, b'one'), (('k', 'v'), b'two'), (None, b'')]
    out = io.BytesIO()
    for chunk in chunks:
        write_chunk(out, chunk)
    body = api.ChunkedBody(io.BytesIO(out.getvalue()))
    assert list(body) == chunks


def test_write_chunk_live():
    """Hand-written chunks, sent raw, reach the app as chunks."""
    seen = []

    def app(session, request, api):
        seen.extend(request.body)
        return (200, 'OK', {}, None)

    with TempServer(('127.0.0.1', 0), app, thread=True) as server:
        out = io.BytesIO()
        headers = {'host': 'a', 'transfer-encoding': 'chunked', 'connection': 'close'}
        out.write(format_request('POST', '/', headers) + b'\r\n\r\n')
        for chunk in [(('n', '1'), b'ab'), (None, b'c'), (None, b'')]:
            write_chunk(out, chunk)
        reply = raw_request(server.address, out.getvalue())
    assert reply.startswith(b'HTTP/1.1 200 OK\r\n')
    assert seen == [(('n', '1'), b'ab'), (None, b'c'), (None, b'')]


# --------------------------------------------------------------------------
# RequestLogger


def test_requestlogger(caplog):
    app = RequestLogger(hello_app)
    assert app.app is hello_app
    assert not hasattr(app, 'on_connect')
    assert repr(app) == f'RequestLogger({hello_app!r})'
    session = degu.base.Session(('127.0.0.1', 1234))
    caplog.set_level(logging.INFO, logger='degu.misc')
    response = app(session, mkreq('GET', '/foo?x'), api)
    assert response[:2] == (200, 'OK')
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ('degu.misc', logging.INFO, '[0] GET /foo?x --> 200 OK'),
    ]
    # on_connect is passed through.
    tls_app = TLSInfoApp()
    assert RequestLogger(tls_app).on_connect == tls_app.on_connect
    with pytest.raises(TypeError) as e:
        RequestLogger(None)
    assert str(e.value) == 'app: not callable: None'


def test_requestlogger_live(caplog):
    caplog.set_level(logging.INFO, logger='degu.misc')
    with TempServer(('127.0.0.1', 0), RequestLogger(hello_app), thread=True) as server:
        conn = Client(server.address, timeout=IO_TIMEOUT).connect()
        try:
            for uri in ('/a', '/b'):
                conn.get(uri, {}).body.read()
        finally:
            conn.close()
    messages = [r.getMessage() for r in caplog.records if r.name == 'degu.misc']
    assert messages == ['[0] GET /a --> 200 OK', '[1] GET /b --> 200 OK']


# --------------------------------------------------------------------------
# Chunked streaming end to end, both variants


def chunked_app(session, request, api):
    chunks = [(None, b'one'), (('part', '2'), b'two'), (None, b'')]
    return (200, 'OK', {}, api.ChunkedBodyIter(chunks))


@pytest.mark.parametrize('thread', VARIANTS)
def test_chunked_streaming(thread):
    with TempServer(('::1', 0, 0, 0), chunked_app, thread=thread) as server:
        conn = Client(server.address, timeout=IO_TIMEOUT).connect()
        try:
            response = conn.get('/', {})
            assert response.headers['transfer-encoding'] == 'chunked'
            assert list(response.body) == [(None, b'one'), (('part', '2'), b'two'), (None, b'')]
            response = conn.post('/', {}, ChunkedBodyIter([(None, b'up'), (None, b'')]))
            assert response.body.read() == b'onetwo'
        finally:
            conn.close()


def test_child_traceback():
    """An error in the server process carries the child's traceback as its cause."""
    with pytest.raises(ValueError) as e:
        EmbeddedServer(b'', build_raises, 'deep down')
    cause = e.value.__cause__
    assert type(cause) is degu._ChildTraceback
    assert 'in build_raises' in str(cause)
    assert str(cause).rstrip().endswith('ValueError: deep down')


class UnloadableError(Exception):
    def __init__(self, a, b):  # pickles, but cannot be rebuilt from its args
        super().__init__(f'{a} {b}')


def build_unloadable():
    raise UnloadableError('x', 'y')


def test_child_error_that_does_not_unpickle():
    with pytest.raises(RuntimeError) as e:
        EmbeddedServer(b'', build_unloadable)
    assert str(e.value).startswith('cannot read what the server process reported: TypeError(')
