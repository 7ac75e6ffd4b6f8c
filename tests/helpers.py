"""Test helpers: a fake socket, a mock transport, and random bodies and chunks.

``FakeSocket(data, n)`` stands in for a socket under ``degu.base.Transport``
(and ``SocketWrapper``):
each ``recv_into`` moves at most *n* bytes of *data* (then ``0``, EOF), each
``send`` accepts at most *n* bytes, and every call is recorded in ``calls``.
Run IO tests with ``n=1`` (worst case, every boundary split) and with a large
*n* (everything in one call).

``MockTransport(chunks)`` is a ``Transport`` whose peer sends the given
byte chunks, one per ``recv_into`` as a real peer's segments arrive, then
EOF; what is sent collects in ``sent``.  The message readers and writers
and the body objects run over it unchanged.

``connect()``, ``recv_all()`` and ``exchange()`` talk raw bytes to a live
server over any address family, every wait bounded.

``copy_examples()``, ``user_env()`` and ``check_installed()`` run the programs
of doc/examples/ as a user would: copied out of the checkout, finding degu
installed.
"""

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import hypothesis
import pytest

import degu
from degu._parse import _load_c_core
from degu.base import MAX_IO_SIZE, Transport

__all__ = (
    'FakeSocket',
    'FakeFile',
    'MockTransport',
    'MOVE_SIZES',
    'random_data',
    'random_chunks',
    'encode_chunks',
    'connect',
    'recv_all',
    'exchange',
    'serving',
    'free_port',
    'wait_listening',
    'EXAMPLES',
    'copy_examples',
    'user_env',
    'check_installed',
)

LIVE_TIMEOUT = 10  # seconds: the bound on every socket wait of connect()'s sockets

MOVE_SIZES = (1, 1 << 20)  # bytes moved per recv_into/send: one at a time, everything


class FakeSocket:
    """A socket that moves at most *n* bytes per ``recv_into`` and ``send``.

    *data* is what the peer sent; after it, ``recv_into`` returns 0 (EOF),
    or raises *recv_error* when one is given.  ``send`` appends to ``sent``
    or raises *send_error* once *send_limit* bytes were accepted.
    """

    def __init__(self, data=b'', n=1 << 20, *, recv_error=None, send_error=None, send_limit=None):
        assert n >= 1
        self._rfile = io.BytesIO(data)
        self.n = n
        self.recv_error = recv_error
        self.send_error = send_error
        self.send_limit = send_limit
        self.sent = bytearray()
        self.calls = []
        self.timeouts = []
        self.close_count = 0

    def recv_into(self, buf):
        size = min(len(buf), self.n)
        data = self._rfile.read(size)
        self.calls.append(('recv_into', len(buf), len(data)))
        if not data and size and self.recv_error is not None:
            raise self.recv_error
        buf[: len(data)] = data
        return len(data)

    def send(self, buf):
        size = min(len(buf), self.n)
        if self.send_limit is not None and len(self.sent) + size > self.send_limit:
            size = self.send_limit - len(self.sent)
            if size == 0:
                self.calls.append(('send', len(buf), None))
                raise self.send_error
        self.sent += bytes(buf[:size])
        self.calls.append(('send', len(buf), size))
        return size

    def settimeout(self, value):
        self.timeouts.append(value)

    def close(self):
        self.close_count += 1
        self.calls.append(('close',))
        return 'closed' if self.close_count == 1 else None

    @property
    def unread(self):
        """What the reader has not received yet."""
        return self._rfile.getvalue()[self._rfile.tell() :]


class _ChunkSocket:
    def __init__(self, chunks):
        self._chunks = [memoryview(bytes(c)) for c in chunks]
        self.sent = bytearray()
        self.closed = False

    def recv_into(self, buf):
        while self._chunks and not self._chunks[0]:
            self._chunks.pop(0)
        if not self._chunks:
            return 0
        chunk = self._chunks[0]
        size = min(len(buf), len(chunk))
        buf[:size] = chunk[:size]
        self._chunks[0] = chunk[size:]
        return size

    def send(self, data):
        self.sent += data
        return len(data)

    def close(self):
        self.closed = True


class MockTransport(Transport):
    """A ``Transport`` over scripted peer chunks (see the module docstring)."""

    def __init__(self, chunks=(), **options):
        super().__init__(_ChunkSocket(chunks), **options)

    @property
    def sent(self):
        """Everything sent so far."""
        return bytes(self.sock.sent)


class FakeFile:
    """A file whose ``readinto``/``write`` move at most *n* bytes per call."""

    def __init__(self, data=b'', n=1 << 20):
        self._f = io.BytesIO(data)
        self.n = n
        self.written = bytearray()

    def readinto(self, buf):
        data = self._f.read(min(len(buf), self.n))
        buf[: len(data)] = data
        return len(data)

    def readline(self, size=-1):
        return self._f.readline(size)

    def write(self, buf):
        size = min(len(buf), self.n)
        self.written += bytes(buf[:size])
        return size


def random_data(size, rng=None):
    """*size* random bytes (deterministic when *rng* is a seeded ``random.Random``)."""
    if rng is None:
        return os.urandom(size)
    return rng.randbytes(size)


def random_chunks(rng, count=None, max_size=300):
    """A list of ``(extension, data)`` chunks ending with an empty one.

    Extensions are ``None``, a token pair or a pair that needs quoting.
    """
    if count is None:
        count = rng.randint(0, 8)
    extensions = [None, ('key', 'value'), ('k', 'a b'), ('n', '"q"\\'), ('x', '')]
    chunks = [
        (rng.choice(extensions), rng.randbytes(rng.randint(1, max_size))) for _ in range(count)
    ]
    chunks.append((rng.choice(extensions), b''))
    return chunks


def encode_chunks(chunks, trailer=b''):
    """The wire form of *chunks* (the last must be empty), with an optional trailer."""
    from degu.base import format_chunk

    out = []
    for chunk in chunks:
        assert len(chunk[1]) <= MAX_IO_SIZE
        out.append(format_chunk(chunk))
        out.append(chunk[1])
        if chunk[1]:
            out.append(b'\r\n')
    return b''.join(out) + trailer + b'\r\n'


def raises(exc_type, message, func, *args, **kw):
    """Call func(*args, **kw), check the exact exception type and message; return it."""
    with pytest.raises(exc_type) as info:
        func(*args, **kw)
    assert type(info.value) is exc_type
    assert str(info.value) == message
    return info.value


def connect(address, timeout=LIVE_TIMEOUT):
    """A connected socket to a server's *address*: IPv4, IPv6 or AF_UNIX."""
    if isinstance(address, tuple):
        family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
    else:
        family = socket.AF_UNIX
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(address)
    return sock


def recv_all(sock):
    """Everything until EOF, each wait bounded by the socket's timeout."""
    parts = []
    for _ in range(100_000):
        data = sock.recv(65536)
        if not data:
            break
        parts.append(data)
    return b''.join(parts)


def exchange(address, data):
    """Send raw bytes, half-close, and read the raw reply to EOF."""
    with connect(address) as sock:
        sock.sendall(data)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)


@contextlib.contextmanager
def serving(app, address=('127.0.0.1', 0), cls=None, *args, **options):
    """Run a ``Server`` (or *cls*) in a thread for a with block; check it cleaned up.

    On leaving: ``shutdown()``, the thread joined, the listening socket
    closed, and no thread of the server's left behind.
    """
    if cls is None:
        from degu.server import Server as cls
    before = set(threading.enumerate())
    server = cls(*args, address, app, **options)
    thread = threading.Thread(target=server.serve_forever, name='test serve_forever')
    thread.start()
    try:
        yield server
    finally:
        server.shutdown(5)
        thread.join(LIVE_TIMEOUT)
        assert not thread.is_alive()
        assert server.sock.fileno() == -1
        left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
        assert left == []


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (another may take it)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def wait_listening(proc, address, seconds=5.0):
    """True once a connect() to *address* works, False if *proc* exits first or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            connect(address, 0.5).close()
            return True
        except OSError:
            time.sleep(0.005)
    return False


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'doc', 'examples')


def copy_examples(dst):
    """Copy doc/examples/*.py into the folder *dst*; return their names, sorted."""
    names = sorted(name for name in os.listdir(EXAMPLES) if name.endswith('.py'))
    for name in names:
        shutil.copyfile(os.path.join(EXAMPLES, name), os.path.join(dst, name))
    return names


def user_env():
    """``os.environ`` as in a user's shell: no PYTHONPATH or MYPYPATH into the checkout."""
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    env.pop('MYPYPATH', None)
    return env


def check_installed(cwd):
    """Assert that a program in *cwd* imports degu from this checkout (an editable install)."""
    result = subprocess.run(
        [sys.executable, '-c', 'import degu; print(degu.__file__)'],
        capture_output=True, text=True, timeout=30, cwd=cwd, env=user_env(),
    )  # fmt: skip
    found = result.stdout.strip() if result.returncode == 0 else None
    expected = os.path.join(ROOT, 'degu', '__init__.py')
    assert found == expected, (
        f'a program outside the checkout imports degu from {found!r}, not {expected!r}: '
        "install this checkout (python3 -m pip install -e '.[test]')"
    )


# --------------------------------------------------------------------------
# The two cores (tests/test_core*.py)

try:
    C_CORE = _load_c_core()  # degu._cparse bound to its reference, or None
except ImportError:
    C_CORE = None
# The C tests skip without a build, and fail instead under DEGU_REQUIRE_C=1 (CI).
need_c = pytest.mark.skipif(
    C_CORE is None and os.environ.get('DEGU_REQUIRE_C') != '1',
    reason='degu._cparse was not built (the C core is optional)',
)
# The differential tests' examples: more under .ci/fuzz-core (DEGU_FUZZ_EXAMPLES).
DIFF = hypothesis.settings(
    max_examples=int(os.environ.get('DEGU_FUZZ_EXAMPLES', '300')),
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)


def run_python(code, **env):
    """The stdout of *code* run in a child importing this checkout's degu (*env* added)."""
    environ = {k: v for (k, v) in os.environ.items() if k != 'DEGU_PURE'}
    environ.update(env)
    environ['PYTHONPATH'] = os.path.dirname(os.path.dirname(os.path.abspath(degu.__file__)))
    out = subprocess.run([sys.executable, '-c', code], env=environ, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.strip()


def memory_growth(burst):
    """Bytes still held after ten more calls of *burst* than after its first two."""
    import gc
    import tracemalloc

    tracemalloc.start()
    try:
        burst()
        burst()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            burst()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
