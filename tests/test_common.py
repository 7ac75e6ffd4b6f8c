"""The small shared helpers of degu._common, each used by several modules."""

import os
import socket
import time

import pytest

from degu import applib, client, misc, server, sslhelpers
from degu._common import _callable_name, _check_abspath, _remove_socket_file, _wait_readable


def test_one_copy_each():
    # Each module uses the helper of degu._common, not a copy of its own.
    assert misc._callable_name is server._callable_name is _callable_name
    assert misc._remove_socket_file is server._remove_socket_file is _remove_socket_file
    for module in (server, client, sslhelpers, applib):
        assert module._check_abspath is _check_abspath
    assert client._wait_readable is applib._wait_readable is _wait_readable
    for module in (server, client, sslhelpers, applib, misc):
        for name in ('_app_name', '_check_path', '_check_file', '_is_stale'):
            assert not hasattr(module, name), (module.__name__, name)


# --------------------------------------------------------------------------
# _callable_name


class Thing:
    def method(self):
        pass


def build():
    pass


class NoModule:
    """Has a ``__qualname__`` but no ``__module__``."""

    def __getattribute__(self, name):
        if name == '__qualname__':
            return 'nowhere'
        if name == '__module__':
            raise AttributeError(name)
        return object.__getattribute__(self, name)


def test_callable_name():
    assert _callable_name(build) == 'test_common.build'
    assert _callable_name(Thing) == 'test_common.Thing'
    assert _callable_name(Thing.method) == 'test_common.Thing.method'
    assert _callable_name(Thing().method) == 'test_common.Thing.method'
    assert _callable_name(len) == 'builtins.len'
    assert _callable_name(lambda: None) == 'test_common.test_callable_name.<locals>.<lambda>'
    # Instances (an app object) have no __qualname__: their repr.
    assert _callable_name(42) == '42'
    thing = Thing()
    assert _callable_name(thing) == repr(thing)
    # A __qualname__ without a __module__ does not raise.
    assert _callable_name(NoModule()) == 'None.nowhere'


# --------------------------------------------------------------------------
# _remove_socket_file


def test_remove_socket_file(tmp_path):
    path = str(tmp_path / 'sock')
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.close()
    assert os.path.exists(path)
    assert _remove_socket_file(path) is None
    assert not os.path.exists(path)
    _remove_socket_file(path)  # gone already: nothing to do
    # Only a socket is removed, never a file that took its place.
    regular = tmp_path / 'regular'
    regular.write_bytes(b'keep me')
    _remove_socket_file(str(regular))
    assert regular.read_bytes() == b'keep me'
    os.mkdir(tmp_path / 'dir')
    _remove_socket_file(str(tmp_path / 'dir'))
    assert os.path.isdir(tmp_path / 'dir')
    # Other errors do not escape either (it runs while a server stops).
    _remove_socket_file(str(regular / 'below'))  # NotADirectoryError
    # Addresses that name no file.
    for address in (b'\x00abstract', ('127.0.0.1', 0), ('::1', 0, 0, 0), None):
        _remove_socket_file(address)


# --------------------------------------------------------------------------
# _check_abspath


def test_check_abspath():
    for path in ('/', '/tmp', '/tmp/a.key', '/a b/c'):
        assert _check_abspath('key_file', path) is path
    for bad in ('a.key', '', '.', '/tmp/', '/tmp/../tmp/a.key', '/tmp/./a', '/a//b'):
        with pytest.raises(ValueError) as e:
            _check_abspath('key_file', bad)
        assert str(e.value) == f'key_file: not absolute, normalized path: {bad!r}'
    for bad in (b'/tmp', None, 17):
        with pytest.raises(TypeError) as e:
            _check_abspath("sslconfig['ca_file']", bad)
        assert str(e.value) == (
            f"sslconfig['ca_file']: need a <class 'str'>; got a {type(bad)!r}: {bad!r}"
        )


# --------------------------------------------------------------------------
# _wait_readable


class Pending:
    """Like an ``ssl.SSLSocket`` holding decrypted bytes: readable whatever its fd says."""

    def pending(self):
        return 1

    def fileno(self):  # pragma: no cover - pending() answers first
        raise AssertionError('fileno() called')


class BrokenFileno:
    def __init__(self, exc):
        self.exc = exc

    def fileno(self):
        raise self.exc


def test_wait_readable():
    (a, b) = socket.socketpair()
    try:
        assert _wait_readable(a, 0) is False
        start = time.monotonic()
        assert _wait_readable(a, 0.05) is False
        assert time.monotonic() - start >= 0.04
        b.sendall(b'x')
        assert _wait_readable(a, 0) is True
        assert _wait_readable(a, 5) is True
        assert a.recv(1) == b'x'
        assert _wait_readable(a, 0) is False
        b.close()
        assert _wait_readable(a, 0) is True  # EOF: the read will say so
    finally:
        a.close()
        b.close()
    assert _wait_readable(a, 0) is True  # closed: fileno() is -1
    assert _wait_readable(Pending(), 0) is True
    assert _wait_readable(BrokenFileno(OSError('bad fd')), 0) is True
    assert _wait_readable(BrokenFileno(ValueError('closed file')), 0) is True


def test_wait_readable_ssl_pending_zero():
    # A pending() of 0 falls through to the file descriptor.
    class Quiet:
        def __init__(self, sock):
            self.sock = sock

        def pending(self):
            return 0

        def fileno(self):
            return self.sock.fileno()

    (a, b) = socket.socketpair()
    with a, b:
        assert _wait_readable(Quiet(a), 0) is False
        b.sendall(b'x')
        assert _wait_readable(Quiet(a), 1) is True

