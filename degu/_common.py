"""Small helpers that several degu modules share, none of them about HTTP.

Each was written more than once before; there is one copy now, with one
rule.  ``import degu`` must stay cheap, so ``degu/__init__.py`` imports this
module only inside the functions that need it.
"""

import errno
import os
import select
import socket
import stat

from ._parse import _TYPE_ERROR

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (doc/decisions.rst)
if TYPE_CHECKING:
    from typing import Any, Protocol

    class _Pollable(Protocol):
        def fileno(self) -> int: ...


# Day and month names in English, whatever the locale (strftime's follow it):
# the date header (RFC 9110 section 5.6.7) and the access log's time.
_DAYS = ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')
_MONTHS = ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')


def _bound_method(obj: object, name: str, label: str) -> 'Any':
    """``getattr(obj, name)``, which must be callable (``label.name()`` names it in the error).

    >>> _bound_method(b'', 'upper', 'data')()
    b''
    >>> _bound_method(type('Sock', (), {'close': None})(), 'close', 'sock')
    Traceback (most recent call last):
      ...
    TypeError: sock.close() is not callable
    """
    method = getattr(obj, name)
    if not callable(method):
        raise TypeError(f'{label}.{name}() is not callable')
    return method


def _callable_name(obj: object) -> str:
    """``module.qualname`` of a function or class (for reprs), else ``repr(obj)``.

    >>> _callable_name(_callable_name)
    'degu._common._callable_name'
    >>> _callable_name(42)
    '42'
    """
    qualname = getattr(obj, '__qualname__', None)
    if qualname is not None:
        return f'{getattr(obj, "__module__", None)}.{qualname}'
    return repr(obj)


def _remove_socket_file(address: object) -> None:
    """Remove the AF_UNIX socket file a server bound at *address*, if there is one.

    Only a ``str`` address names a file (``bytes`` is an abstract name, a
    tuple an IP address), and only a socket is removed, never a file that
    took its place.  Best effort: it runs while a server stops, where an
    error would hide the one that stopped it, so no ``OSError`` escapes.
    """
    if type(address) is str:
        try:
            if stat.S_ISSOCK(os.lstat(address).st_mode):
                os.unlink(address)
        except OSError:
            pass


# A live server accepts a connect() at once (the kernel queues it); a full
# backlog makes it wait, and then the file is not ours to take anyway.
STALE_PROBE_TIMEOUT = 1.0  # seconds


def _remove_stale_socket(path: str, error: OSError) -> bool:
    """Remove the socket file at *path* that made bind() fail if nobody listens on it.

    True if it was removed (the caller binds again), after *error* from bind().

    A server that was killed leaves its socket file behind, and the next
    bind() at that path fails with ``EADDRINUSE``.  The file is removed
    when connecting to it is refused: no server owns it any more.  False
    when a server answers there, or for any other error: the caller raises
    *error*.  A path that is not a socket (a regular file, a folder) is
    never taken: that raises an ``OSError`` (``EADDRINUSE``, as bind()
    does) that names it and says it is not a socket.
    """
    if error.errno != errno.EADDRINUSE:
        return False
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # gone meanwhile, or unreadable: report the bind error
        return False
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EADDRINUSE, 'Address already in use by a file that is not a '
                      'socket (left alone)', path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(STALE_PROBE_TIMEOUT)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)
            return True
        except OSError:  # a full backlog, no permission...: someone may own it
            return False
    return False


def _check_abspath(label: str, path: object) -> str:
    """*path* if it is a ``str`` and an absolute, normalized path, else raise.

    >>> _check_abspath('ssldir', '/tmp/ssl')
    '/tmp/ssl'
    >>> _check_abspath('ssldir', '/tmp/../ssl')
    Traceback (most recent call last):
      ...
    ValueError: ssldir: not absolute, normalized path: '/tmp/../ssl'
    """
    if type(path) is not str:
        raise TypeError(_TYPE_ERROR.format(label, str, type(path), path))
    if os.path.abspath(path) != path:
        raise ValueError(f'{label}: not absolute, normalized path: {path!r}')
    return path


def _wait_readable(sock: '_Pollable', timeout: float) -> bool:
    """True once *sock* has something to read, False after *timeout* seconds.

    Something to read includes what makes a read fail at once: EOF, a reset,
    a socket already closed (``fileno()`` -1 or an error), so the caller's
    read reports it.  An ``ssl.SSLSocket`` with decrypted bytes pending is
    readable whatever its file descriptor says.  *timeout* ``0`` polls.
    """
    pending = getattr(sock, 'pending', None)  # bytes OpenSSL already decrypted
    if pending is not None and pending():
        return True
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        if hasattr(select, 'poll'):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLPRI)
            return bool(poller.poll(timeout * 1000))
        return bool(select.select([fd], [], [], timeout)[0])  # pragma: no cover - no poll()
    except (OSError, ValueError):
        return True
