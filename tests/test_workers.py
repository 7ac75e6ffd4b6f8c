"""Tests of degu.workers and ``python3 -m degu --workers``: real processes, real sockets.

The apps are module-level functions, so that the tests hold with any start
method.  Each answers with the process id of the worker that served it,
which is how a test tells workers (and reloads) apart.
"""

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import free_port

from degu import workers as workers_module
from degu.workers import Workers, listening_socket, notify, systemd_sockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 20  # seconds: any single wait in these tests
ACTIVATE = shutil.which('systemd-socket-activate') or '/usr/bin/systemd-socket-activate'
# .ci/run installs it (Debian's systemd) and sets this: a missing tool fails.
REQUIRED = os.environ.get('DEGU_INTEROP_REQUIRED') == '1'
needs_activate = pytest.mark.skipif(
    not REQUIRED and not os.path.exists(ACTIVATE), reason='needs systemd-socket-activate'
)


def pid_app(session, request, api):
    if request.body is not None:
        request.body.read()
    if request.path and request.path[0] == 'slow':
        # /slow/<marker file>: say we started, then take a while
        with open('/' + '/'.join(request.path[1:]), 'w'):
            pass
        time.sleep(0.8)
    return (200, 'OK', {}, str(os.getpid()).encode())


def pid_factory():
    built_in = os.getpid()

    def app(session, request, api):
        return (200, 'OK', {}, f'{built_in} {os.getpid()}'.encode())

    return app


FLAG = {'path': None}  # set by a test before the workers start (inherited by fork)


def flag_factory():
    if os.path.exists(FLAG['path']):
        raise RuntimeError('no database today')
    return pid_app


def slow_factory():
    time.sleep(TIMEOUT)
    return pid_app


def failing_factory():
    raise RuntimeError('no database today')


def deaf_factory():
    # A worker that never sees SIGTERM: the parent must kill it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    return pid_app


# --------------------------------------------------------------------------
# Helpers


def request(address, path='/', timeout=TIMEOUT):
    """One GET on a new connection: (status, body)."""
    if isinstance(address, tuple):
        conn = http.client.HTTPConnection(address[0], address[1], timeout=timeout)
    else:
        conn = _UnixConnection(address, timeout)
    try:
        conn.request('GET', path, headers={'connection': 'close'})
        response = conn.getresponse()
        return (response.status, response.read().decode())
    finally:
        conn.close()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__('localhost', timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Load:
    """Requests one after another from a thread until stopped; counts the answers."""

    def __init__(self, address, limit=60.0):
        self.address = address
        self.statuses = []
        self.pids = []
        self.errors = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                (status, body) = request(self.address)
            except OSError as e:
                self.errors.append(repr(e))
                continue
            self.statuses.append(status)
            self.pids.append(int(body))

    def wait_for(self, count):
        deadline = time.monotonic() + TIMEOUT
        while len(self.statuses) + len(self.errors) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self):
        self._stop.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


def wait_until(predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.02)


def children(ppid):
    """The process ids whose parent is *ppid*, from /proc."""
    found = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == ppid and fields[0] != 'Z':
            found.append(int(name))
    return sorted(found)


@pytest.fixture
def our_children():
    """The live child processes of this process started since the test began.

    Other tests' servers may still be children of the test process (module
    fixtures); they are not counted.
    """
    before = set(children(os.getpid()))
    return lambda: sorted(set(children(os.getpid())) - before)


class Running:
    """``Workers.serve_forever()`` in a thread of the test, stopped on exit."""

    def __init__(self, *args, **kw):
        self.workers = Workers(*args, **kw)
        self.error = None
        self.result = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            self.result = self.workers.serve_forever()
        except BaseException as e:
            self.error = e

    def __enter__(self):
        return self.workers

    def __exit__(self, *exc):
        self.workers.shutdown(timeout=2)
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


# --------------------------------------------------------------------------
# The library API


@pytest.mark.parametrize(('kw', 'error', 'message'), [
    ({'workers': 0}, ValueError, 'need 1 <= workers <= 1024; got 0'),
    ({'workers': 1025}, ValueError, 'need 1 <= workers <= 1024; got 1025'),
    ({'workers': '2'}, TypeError, "workers: need a <class 'int'>; got a <class 'str'>: '2'"),
    ({'factory': 1}, TypeError, "factory: need a <class 'bool'>; got a <class 'int'>: 1"),
    ({'stop_timeout': -1}, ValueError, 'stop_timeout must be >= 0; got -1'),
    ({'max_connection': 3}, TypeError, 'unsupported Server() **options: max_connection'),
    ({'timeout': 0}, ValueError, 'timeout must be > 0; got 0'),
])
def test_workers_checks_its_arguments(kw, error, message):
    with pytest.raises(error) as info:
        Workers(('127.0.0.1', 0), pid_app, **kw)
    assert str(info.value) == message


def test_workers_app_must_be_callable():
    with pytest.raises(TypeError) as info:
        Workers(('127.0.0.1', 0), 'app')
    assert str(info.value) == "app: not callable: 'app'"


def test_workers_serve_and_the_parent_never_does(our_children):
    with Running(('127.0.0.1', 0), pid_app, 2) as w:
        assert w.wait_ready(TIMEOUT)
        assert repr(w) == f"Workers({w.address!r}, test_workers.pid_app, workers=2)"
        pids = w.pids
        assert len(pids) == 2 and os.getpid() not in pids
        assert our_children() == sorted(pids)
        answers = [request(w.address) for _ in range(20)]
        assert {status for (status, _) in answers} == {200}
        assert {int(body) for (_, body) in answers} <= set(pids)
    assert w.pids == []
    assert our_children() == []


def test_workers_on_an_af_unix_path_remove_it(tmp_path):
    path = str(tmp_path / 'w.sock')
    with Running(path, pid_app, 1) as w:
        assert w.wait_ready(TIMEOUT)
        assert w.address == path
        (status, body) = request(path)
        assert (status, int(body)) == (200, w.pids[0])
    assert not os.path.exists(path)


def test_workers_on_a_socket_of_the_caller():
    sock = socket.create_server(('127.0.0.1', 0))
    with Running(sock, pid_app, 1) as w:
        assert w.wait_ready(TIMEOUT)
        assert w.address == sock.getsockname()
        assert request(w.address)[0] == 200
    assert sock.fileno() == -1  # closed with the Workers, as Server closes its own


@pytest.mark.skipif(shutil.which('openssl') is None, reason='needs the openssl command')
def test_workers_serve_tls():
    from degu.client import SSLClient
    from degu.misc import TempPKI

    with TempPKI(client_pki=False) as pki:
        with Running(('127.0.0.1', 0), pid_app, 2,
                     sslconfig=pki.anonymous_server_sslconfig) as w:
            assert w.wait_ready(TIMEOUT)
            client = SSLClient(pki.anonymous_client_sslconfig, w.address, timeout=TIMEOUT)
            conn = client.connect()
            try:
                response = conn.get('/', {})
                assert response.status == 200
                assert int(response.body.read()) in w.pids
            finally:
                conn.close()


def test_factory_is_called_in_each_worker():
    with Running(('127.0.0.1', 0), pid_factory, 2, factory=True) as w:
        assert w.wait_ready(TIMEOUT)
        for _ in range(10):
            (built_in, served_by) = map(int, request(w.address)[1].split())
            assert built_in == served_by and served_by in w.pids


def test_a_killed_worker_is_replaced_and_no_request_is_lost():
    with Running(('127.0.0.1', 0), pid_app, 2) as w:
        assert w.wait_ready(TIMEOUT)
        first = w.pids
        load = Load(w.address)
        try:
            load.wait_for(20)
            os.kill(first[0], signal.SIGKILL)
            wait_until(lambda: len(w.pids) == 2 and first[0] not in w.pids, 'a new worker')
            done = len(load.statuses)
            lost = len(load.errors)  # what the killed worker held: one request at most
            load.wait_for(done + 20)
        finally:
            load.stop()
        assert lost <= 1 and len(load.errors) == lost, load.errors
        assert set(load.statuses) == {200} and len(load.statuses) >= 40
        (new,) = set(w.pids) - set(first)
        wait_until(lambda: new in {int(b) for (_, b) in
                                   (request(w.address) for _ in range(4))}, 'the new worker')


def test_reload_under_load_loses_no_request():
    with Running(('127.0.0.1', 0), pid_app, 2) as w:
        assert w.wait_ready(TIMEOUT)
        old = set(w.pids)
        load = Load(w.address)
        try:
            load.wait_for(30)
            w.reload()
            wait_until(lambda: w.pids and not old & set(w.pids), 'the old workers to go')
            assert len(w.pids) == 2
            done = len(load.statuses)
            load.wait_for(done + 30)
        finally:
            load.stop()
        assert load.errors == []
        assert set(load.statuses) == {200} and len(load.statuses) >= 60
        # Served by the old workers, then by the new ones only.
        assert old & set(load.pids) and set(load.pids[-10:]) <= set(w.pids)


def test_add_and_remove_a_worker():
    with Running(('127.0.0.1', 0), pid_app, 1) as w:
        assert w.wait_ready(TIMEOUT)
        w.add_worker()
        w.add_worker()
        wait_until(lambda: len(w.pids) == 3 and w.workers == 3, 'three workers')
        for _ in range(3):
            w.remove_worker()  # the third is refused: never below one
        wait_until(lambda: len(w.pids) == 1, 'one worker')
        assert w.workers == 1
        assert request(w.address)[0] == 200


def test_shutdown_lets_an_in_flight_request_finish(tmp_path, our_children):
    marker = tmp_path / 'started'
    with Running(('127.0.0.1', 0), pid_app, 2) as w:
        assert w.wait_ready(TIMEOUT)
        result = {}
        client = threading.Thread(
            target=lambda: result.update(answer=request(w.address, f'/slow{marker}')))
        client.start()
        wait_until(marker.exists, 'the slow request to start')
        start = time.monotonic()
        assert w.shutdown() is True
        assert time.monotonic() - start < 5
        client.join(TIMEOUT)
        assert result['answer'][0] == 200
        assert w.pids == [] and our_children() == []


def test_shutdown_kills_a_worker_that_does_not_stop(monkeypatch, our_children):
    monkeypatch.setattr(workers_module, 'KILL_GRACE', 0.3)
    running = Running(('127.0.0.1', 0), deaf_factory, 1, factory=True, stop_timeout=0.2)
    w = running.workers
    assert w.wait_ready(TIMEOUT)
    (pid,) = w.pids
    start = time.monotonic()
    assert w.shutdown() is False  # it had to be killed
    assert time.monotonic() - start < 0.2 + 0.3 + 2
    running.thread.join(TIMEOUT)
    assert running.result is False and running.error is None
    assert our_children() == []


def test_first_workers_that_cannot_start_are_an_error(our_children):
    w = Workers(('127.0.0.1', 0), failing_factory, 2, factory=True)
    with pytest.raises(RuntimeError) as info:
        w.serve_forever()
    assert str(info.value).endswith(' failed to start: RuntimeError: no database today')
    assert str(info.value).startswith('worker ')
    assert w.sock.fileno() == -1 and our_children() == []


def test_a_worker_that_is_not_ready_in_time_is_killed(monkeypatch, our_children):
    monkeypatch.setattr(workers_module, 'READY_TIMEOUT', 0.3)
    w = Workers(('127.0.0.1', 0), slow_factory, 1, factory=True)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        w.serve_forever()
    assert str(info.value).endswith(' failed to start: not ready after 0.3 s')
    assert time.monotonic() - start < 0.3 + 5
    assert our_children() == []


def test_workers_that_keep_exiting_make_the_parent_give_up(monkeypatch, tmp_path, our_children):
    monkeypatch.setattr(workers_module, 'MAX_RESTARTS', 3)
    monkeypatch.setitem(FLAG, 'path', str(tmp_path / 'flag'))
    running = Running(('127.0.0.1', 0), flag_factory, 2, factory=True)
    w = running.workers
    assert w.wait_ready(TIMEOUT)
    (tmp_path / 'flag').touch()  # from now on, a new worker fails to build its app
    os.kill(w.pids[0], signal.SIGKILL)
    running.thread.join(TIMEOUT)
    assert not running.thread.is_alive()
    assert str(running.error) == ('workers exited 4 times in 10 s (the last: RuntimeError: '
                                  'no database today); giving up')
    assert our_children() == [] and w.sock.fileno() == -1


def test_serve_forever_twice_and_after_shutdown():
    with Running(('127.0.0.1', 0), pid_app, 1) as w:
        assert w.wait_ready(TIMEOUT)
        with pytest.raises(RuntimeError) as info:
            w.serve_forever()
        assert str(info.value) == 'serve_forever() is already running'
    with pytest.raises(RuntimeError) as info:
        w.serve_forever()
    assert str(info.value) == 'Workers were shut down'
    idle = Workers(('127.0.0.1', 0), pid_app, 1)
    assert idle.shutdown() is True and idle.sock.fileno() == -1


# --------------------------------------------------------------------------
# Readiness and inherited sockets


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket of our own, named in NOTIFY_SOCKET as a service manager would."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / 'notify')
    sock.bind(path)
    sock.settimeout(TIMEOUT)
    monkeypatch.setenv('NOTIFY_SOCKET', path)
    yield sock
    sock.close()


def test_notify_a_path(notify_socket):
    assert notify('READY=1') is True
    assert notify_socket.recv(4096) == b'READY=1'


def test_notify_an_abstract_socket(monkeypatch):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b'\0degu-test-notify-%d' % os.getpid())
        sock.settimeout(TIMEOUT)
        monkeypatch.setenv('NOTIFY_SOCKET', f'@degu-test-notify-{os.getpid()}')
        assert notify('STOPPING=1') is True
        assert sock.recv(4096) == b'STOPPING=1'


def test_notify_without_a_manager(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv('NOTIFY_SOCKET', raising=False)
    assert notify('READY=1') is False
    monkeypatch.setenv('NOTIFY_SOCKET', 'relative/path')
    assert notify('READY=1') is False
    monkeypatch.setenv('NOTIFY_SOCKET', str(tmp_path / 'nobody'))
    assert notify('READY=1') is False
    assert 'Cannot notify' in caplog.text


def test_workers_notify_ready_and_stopping(notify_socket):
    w = Workers(('127.0.0.1', 0), pid_app, 2)
    thread = threading.Thread(target=w.serve_forever, kwargs={'notify': True}, daemon=True)
    thread.start()
    try:
        assert notify_socket.recv(4096) == f'READY=1\nMAINPID={os.getpid()}'.encode()
        assert w.wait_ready(0) and len(w.pids) == 2  # READY=1 came once both serve
    finally:
        w.shutdown()
        thread.join(TIMEOUT)
    assert notify_socket.recv(4096) == b'STOPPING=1'


def test_listening_socket_refuses_what_is_not_one():
    (r, wfd) = os.pipe()
    plain = socket.socket()
    try:
        for (fd, message) in [(r, f'fd {r}: not a socket'),
                              (plain.fileno(), f'fd {plain.fileno()}: not a listening stream '
                                               'socket')]:
            with pytest.raises(ValueError) as info:
                listening_socket(fd)
            assert str(info.value) == message
        os.close(wfd)
        with pytest.raises(ValueError) as info:
            listening_socket(wfd)
        assert str(info.value) == f'fd {wfd}: Bad file descriptor'
        assert plain.fileno() >= 0  # left open: not ours
    finally:
        os.close(r)
        plain.close()


def test_systemd_sockets_for_another_process_are_ignored_and_unset(monkeypatch):
    monkeypatch.setenv('LISTEN_PID', str(os.getpid() + 1))
    monkeypatch.setenv('LISTEN_FDS', '1')
    monkeypatch.setenv('LISTEN_FDNAMES', 'web')
    assert systemd_sockets() == []
    assert not {'LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'} & set(os.environ)


# --------------------------------------------------------------------------
# The command line


APP_SOURCE = textwrap.dedent('''
    import os
    import time

    def app(session, request, api):
        if request.path == ['slow']:
            open('started', 'w').close()
            time.sleep(0.8)
        if request.path == ['env']:
            names = ('LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES')
            return (200, 'OK', {}, repr([os.environ.get(n) for n in names]).encode())
        return (200, 'OK', {}, str(os.getpid()).encode())

    def broken():
        raise RuntimeError('no database today')
''')


class Command:
    """``python3 -m degu ARGS`` (or under systemd-socket-activate) in a subprocess."""

    def __init__(self, cwd, *args, wait='Serving ', env=None, prefix=()):
        (cwd / 'wapp.py').write_text(APP_SOURCE)
        self.env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, '-m', 'degu', *args], cwd=cwd, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        self.lines = []
        if wait:
            for _ in range(50):
                line = self.proc.stderr.readline()
                self.lines.append(line)
                if not line or line.startswith(wait):
                    break
            assert self.lines[-1].startswith(wait), self.lines

    def stop(self, sig=signal.SIGTERM):
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            (_, err) = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - reported by the assert
            self.proc.kill()
            (_, err) = self.proc.communicate()
        return (self.proc.returncode, ''.join(self.lines) + err)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            for pid in children(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.communicate()


def test_cli_workers_sighup_reload_under_load_loses_no_request(tmp_path):
    port = free_port()
    with Command(tmp_path, 'serve', 'wapp:app', '--workers', '2', '-p', str(port),
                 '--quiet') as cmd:
        assert f'on http://127.0.0.1:{port}/ with 2 workers' in cmd.lines[-1]
        old = set(children(cmd.proc.pid))
        assert len(old) == 2
        load = Load(('127.0.0.1', port))
        try:
            load.wait_for(30)
            cmd.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: not old & set(children(cmd.proc.pid))
                       and len(children(cmd.proc.pid)) == 2, 'the old workers to go')
            done = len(load.statuses)
            load.wait_for(done + 30)
        finally:
            load.stop()
        new = set(children(cmd.proc.pid))
        (code, err) = cmd.stop()
    assert load.errors == []
    assert set(load.statuses) == {200} and len(load.statuses) >= 60
    assert old & set(load.pids) and set(load.pids[-10:]) <= new
    assert code == 0, err


def test_cli_workers_sigkill_sigttin_sigttou_sigterm(tmp_path):
    port = free_port()
    with Command(tmp_path, 'serve', 'wapp:app', '--workers', '2', '-p', str(port),
                 '--quiet') as cmd:
        address = ('127.0.0.1', port)
        first = children(cmd.proc.pid)
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(children(cmd.proc.pid)) == 2
                   and first[0] not in children(cmd.proc.pid), 'a replacement')
        assert request(address)[0] == 200
        cmd.proc.send_signal(signal.SIGTTIN)
        wait_until(lambda: len(children(cmd.proc.pid)) == 3, 'a third worker')
        # One at a time: two of the same signal pending at once count as one.
        cmd.proc.send_signal(signal.SIGTTOU)
        wait_until(lambda: len(children(cmd.proc.pid)) == 2, 'two workers')
        cmd.proc.send_signal(signal.SIGTTOU)
        wait_until(lambda: len(children(cmd.proc.pid)) == 1, 'one worker')
        # SIGTERM while a request is in flight: it is answered, then all exit 0.
        result = {}
        client = threading.Thread(target=lambda: result.update(answer=request(address,
                                                                                '/slow')))
        client.start()
        wait_until((tmp_path / 'started').exists, 'the slow request to start')
        (code, err) = cmd.stop(signal.SIGTERM)
        client.join(TIMEOUT)
    assert result['answer'][0] == 200
    assert code == 0, err
    assert f'Worker {first[0]} exited unexpectedly (killed by SIGKILL)' in err


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_cli_workers_stop_when_the_parent_is_killed(tmp_path):
    port = free_port()
    with Command(tmp_path, 'serve', 'wapp:app', '--workers', '2', '-p', str(port),
                 '--quiet') as cmd:
        pids = children(cmd.proc.pid)
        assert len(pids) == 2
        cmd.proc.kill()  # SIGKILL: the parent cannot stop them
        cmd.proc.communicate(timeout=TIMEOUT)
        try:
            wait_until(lambda: not any(_alive(pid) for pid in pids), 'orphaned workers to stop')
        finally:
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_cli_workers_factory_that_fails(tmp_path):
    with Command(tmp_path, 'serve', 'wapp:broken()', '--workers', '2', '-p',
                 str(free_port()), wait=False) as cmd:
        (code, err) = cmd.stop(None)
    assert code == 1
    assert err.rstrip().splitlines()[-1].endswith(
        ' failed to start: RuntimeError: no database today')


def _activated(tmp_path, listen, *args, fdname=None):
    """The command under systemd-socket-activate, with NOTIFY_SOCKET on a socket of ours."""
    notify_path = str(tmp_path / 'notify')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.settimeout(TIMEOUT)
    prefix = [ACTIVATE, '-l', listen, '-E', 'PYTHONPATH', '-E', f'NOTIFY_SOCKET={notify_path}']
    if fdname:
        prefix.append(f'--fdname={fdname}')
    # It starts the server at the first connection, once it listens.
    cmd = Command(tmp_path, 'serve', 'wapp:app', '--quiet', *args, wait='Listening on ',
                  prefix=prefix)
    return (cmd, sock)


@needs_activate
def test_cli_systemd_socket_activation_with_workers(tmp_path):
    port = free_port()
    (cmd, notified) = _activated(tmp_path, f'127.0.0.1:{port}', '--workers', '2')
    with cmd, notified:
        (status, body) = request(('127.0.0.1', port), '/env')
        assert (status, body) == (200, '[None, None, None]')  # unset before the workers ran
        ready = notified.recv(4096).decode()
        assert ready == f'READY=1\nMAINPID={cmd.proc.pid}'
        assert len(children(cmd.proc.pid)) == 2
        assert int(request(('127.0.0.1', port))[1]) in children(cmd.proc.pid)
        (code, err) = cmd.stop()
        assert notified.recv(4096) == b'STOPPING=1'
    assert code == 0, err
    assert f'on http://127.0.0.1:{port}/ with 2 workers' in err


@needs_activate
def test_cli_systemd_socket_activation_af_unix_by_name(tmp_path):
    path = str(tmp_path / 'web.sock')
    (cmd, notified) = _activated(tmp_path, path, '--fd', 'web', fdname='web')
    with cmd, notified:
        (status, body) = request(path, '/env')
        assert (status, body) == (200, '[None, None, None]')
        assert notified.recv(4096) == f'READY=1\nMAINPID={cmd.proc.pid}'.encode()
        assert int(request(path)[1]) == cmd.proc.pid  # no --workers: one process serves
        (code, err) = cmd.stop()
        assert notified.recv(4096) == b'STOPPING=1'
    assert code == 0, err
    assert f'over AF_UNIX {path}' in err


def test_cli_workers_sighup_reopens_the_access_log_for_the_new_workers(tmp_path):
    # logrotate moves the file and sends SIGHUP: the parent reopens it before
    # it forks the new workers, which inherit its open files, so the lines
    # after the reload go to the new file, none to the moved one.
    port = free_port()
    log = tmp_path / 'access.log'
    with Command(tmp_path, 'serve', 'wapp:app', '--workers', '2', '-p', str(port),
                 '--access-log', str(log)) as cmd:
        address = ('127.0.0.1', port)
        assert request(address, '/before')[0] == 200
        wait_until(lambda: log.exists() and 'GET /before ' in log.read_text(), 'a line')
        old = set(children(cmd.proc.pid))
        log.rename(tmp_path / 'access.log.1')
        cmd.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: not old & set(children(cmd.proc.pid))
                   and len(children(cmd.proc.pid)) == 2, 'the old workers to go')
        assert request(address, '/after')[0] == 200
        wait_until(lambda: log.exists() and 'GET /after ' in log.read_text(), 'a new line')
        (code, err) = cmd.stop()
    assert code == 0, err
    assert 'GET /after ' not in (tmp_path / 'access.log.1').read_text()
