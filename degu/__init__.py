"""degu: an embeddable HTTP/1.1 server and client library.

This module holds the version, the address constants and ``EmbeddedServer``
/ ``EmbeddedSSLServer`` (a server in a child process); it imports no other
part of the package, nor ``multiprocessing`` or ``ssl``, until they are used,
so ``import degu`` stays cheap.  Import what you need explicitly:
``degu.server``, ``degu.client``, ``degu.base``, ...

>>> import degu
>>> degu.IPv6_LOOPBACK
('::1', 0, 0, 0)
>>> degu.ADDRESS_CONSTANTS[2]
('127.0.0.1', 0)
"""

__version__ = '0.1.0'

# Annotations here are strings and their imports are for type checkers only:
# importing typing would cost several times what the rest of `import degu` does.
# Type checkers treat a name TYPE_CHECKING as true whatever its value.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess
    from typing import Any, TypeVar

    from ._types import App

    _S = TypeVar('_S', bound='_Stoppable')

__all__ = (
    'IPv6_LOOPBACK',
    'IPv6_ANY',
    'IPv4_LOOPBACK',
    'IPv4_ANY',
    'ADDRESS_CONSTANTS',
    'EmbeddedServer',
    'EmbeddedSSLServer',
)

IPv6_LOOPBACK = ('::1', 0, 0, 0)
IPv6_ANY = ('::', 0, 0, 0)
IPv4_LOOPBACK = ('127.0.0.1', 0)
IPv4_ANY = ('0.0.0.0', 0)
ADDRESS_CONSTANTS = (IPv6_LOOPBACK, IPv6_ANY, IPv4_LOOPBACK, IPv4_ANY)


# --------------------------------------------------------------------------
# Servers in a child process (doc/decisions.rst, 'Server lifecycle').
#
# Parent                                   Child (daemon Process)
#   Pipe(duplex=False); Process.start() --> build the app (EmbeddedServer)
#   close our copy of the writer             Server(address, app, **options)
#   poll(START_TIMEOUT) on the reader   <--  send(server.address) or send(exc)
#   address, or re-raise exc                 serve_forever() until SIGTERM
#
# A pipe rather than a Queue: no feeder thread, and a child that dies before
# reporting closes the last writer, so the parent gets EOF at once instead
# of waiting out the timeout.  Everything here imports lazily: `import degu`
# must not pull in multiprocessing, ssl or any degu submodule.

START_TIMEOUT = 30  # seconds the parent waits for the child's bound address
STOP_TIMEOUT = 5  # seconds to wait for a server (process or thread) to stop


def _mp_context():
    """The multiprocessing context for server processes, chosen explicitly.

    ``fork`` on Linux: fast, and the app object needs no pickling.  Elsewhere
    ``spawn``, so apps and build functions must be importable module-level
    objects there.
    """
    import multiprocessing
    import sys

    return multiprocessing.get_context('fork' if sys.platform.startswith('linux') else 'spawn')


class _ChildTraceback(Exception):
    """The traceback of an error in a server process, as the ``__cause__`` of its re-raise."""

    def __str__(self) -> str:
        return '\n\n' + self.args[0]


def _report(conn: 'Connection', value: object, tb: 'str | None' = None) -> None:
    """Send the bound address, or an exception and its formatted traceback."""
    try:
        conn.send((value, tb))
    except Exception as e:  # an exception that does not pickle
        conn.send((RuntimeError(f'{type(value).__name__}: {value}; (unpicklable: {e!r})'), tb))
    finally:
        conn.close()


def _serve_in_child(
    conn: 'Connection',
    sslconfig: 'dict[str, Any] | None',
    address: 'tuple | str | bytes',
    app: 'Callable[..., Any] | None',
    build_func: 'Callable[..., Any] | None',
    build_args: tuple,
    options: 'dict[str, Any]',
) -> None:
    """The server process: build the server, report its address, serve."""
    try:
        if build_func is not None:
            app = build_func(*build_args)
        assert app is not None  # _start_server_process() is given an app or a build_func
        if sslconfig is None:
            from degu.server import Server

            server = Server(address, app, **options)
        else:
            from degu.server import SSLServer

            server = SSLServer(sslconfig, address, app, **options)
    except BaseException as e:  # reported to (and raised in) the parent
        import traceback

        _report(conn, e, ''.join(traceback.format_exception(type(e), e, e.__traceback__)))
        raise SystemExit(1) from None  # quietly: the parent has the traceback
    _report(conn, server.address)
    server.serve_forever()


def _start_server_process(
    sslconfig: 'dict[str, Any] | None',
    address: 'tuple | str | bytes',
    app: 'Callable[..., Any] | None',
    build_func: 'Callable[..., Any] | None',
    build_args: tuple,
    options: 'dict[str, Any]',
) -> 'tuple[BaseProcess, tuple | str | bytes]':
    """Start a server process; return ``(process, bound_address)`` or raise its error."""
    ctx = _mp_context()
    (reader, writer) = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_serve_in_child,
        args=(writer, sslconfig, address, app, build_func, build_args, options),
        daemon=True,
    )
    try:
        try:
            process.start()
        finally:
            writer.close()
        if not reader.poll(START_TIMEOUT):
            raise TimeoutError(
                f'server process did not report its address within {START_TIMEOUT} s'
            )
        try:
            (result, tb) = reader.recv()
        except EOFError:
            process.join(STOP_TIMEOUT)
            raise RuntimeError(
                f'server process exited before reporting its address (exitcode {process.exitcode})'
            ) from None
        except Exception as e:  # e.g. an exception class that does not unpickle
            raise RuntimeError(f'cannot read what the server process reported: {e!r}') from e
    except BaseException:
        _stop_server_process(process)
        process.close()  # nobody will look at it: release its sentinel fd now
        raise
    finally:
        reader.close()
    if isinstance(result, BaseException):
        _stop_server_process(process)
        process.close()
        raise result from _ChildTraceback(tb)
    return (process, result)


def _stop_server_process(process: 'BaseProcess') -> None:
    """Terminate and join *process* (SIGKILL if SIGTERM is not enough).

    The process is not closed: ``is_alive()`` and ``exitcode`` stay readable
    (its sentinel fd goes with the object).
    """
    if process.pid is not None:  # started
        if process.exitcode is None:
            process.terminate()
            process.join(STOP_TIMEOUT)
        if process.exitcode is None:  # pragma: no cover - a child ignoring SIGTERM
            process.kill()
            process.join(STOP_TIMEOUT)
        if process.exitcode is None:  # pragma: no cover
            raise RuntimeError(f'server process {process.pid} did not stop')


class _Stoppable:
    """``with`` and garbage collection call ``terminate()`` (here and in degu.misc)."""

    terminate: 'Callable[[], None]'  # each subclass stops its own kind of server
    _stopped = False  # set by terminate(): what it stopped stays readable

    def __enter__(self: '_S') -> '_S':
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def __del__(self):
        try:
            self.terminate()
        except Exception:  # pragma: no cover - nobody to report to
            pass


class _ProcessServer(_Stoppable):
    """What EmbeddedServer and EmbeddedSSLServer share: a process and its life.

    ``process`` stays set after ``terminate()``, as in the original Degu, so
    ``process.is_alive()`` and ``process.exitcode`` tell how it ended.
    """

    process = None

    def _start(
        self,
        sslconfig: 'dict[str, Any] | None',
        address: 'tuple | str | bytes',
        app: 'Callable[..., Any] | None',
        build_func: 'Callable[..., Any] | None',
        build_args: tuple,
        options: 'dict[str, Any]',
    ) -> None:
        import os

        self._pid = os.getpid()
        (self.process, self.address) = _start_server_process(
            sslconfig, address, app, build_func, build_args, options
        )

    def _build(
        self,
        sslconfig: 'dict[str, Any] | None',
        address: 'tuple | str | bytes',
        build_func: 'Callable[..., Any]',
        build_args: tuple,
        options: 'dict[str, Any]',
    ) -> None:
        # EmbeddedServer and EmbeddedSSLServer: the app is built in the child.
        if not callable(build_func):
            raise TypeError(f'build_func: not callable: {build_func!r}')
        self.address = address
        self.build_func = build_func
        self.build_args = build_args
        self.options = options
        self._start(sslconfig, address, None, build_func, build_args, options)

    def __repr__(self) -> str:
        from ._common import _callable_name

        return f'{type(self).__name__}({self.address!r}, {_callable_name(self.build_func)})'

    def terminate(self) -> None:
        """Stop the server process and wait for it; calling it again does nothing."""
        import os

        process = self.process
        if process is None or self._stopped or getattr(self, '_pid', None) != os.getpid():
            return  # never started, already stopped, or inherited by a forked child
        self._stopped = True
        try:
            _stop_server_process(process)
        finally:
            from ._common import _remove_socket_file

            _remove_socket_file(self.address)


class EmbeddedServer(_ProcessServer):
    """A ``degu.server.Server`` running in a child process (doc/degu.misc.rst).

    In the child, ``app = build_func(*build_args)`` builds the app, so the app
    itself never crosses the process boundary: only *build_func* and its
    arguments must survive ``fork`` (or pickling where ``spawn`` is used).
    The constructor returns once the server is listening, with the bound
    address in ``address``; an error in the child (a bad option, a failure
    to bind, an exception from *build_func*) is raised here instead.

    ``terminate()`` stops it; so do ``with`` and garbage collection.  The
    ``process`` attribute stays set afterwards (``process.exitcode``).
    """

    def __init__(
        self,
        address: 'tuple | str | bytes',
        build_func: 'Callable[..., App]',
        *build_args: object,
        **options: object,
    ) -> None:
        self._build(None, address, build_func, build_args, options)


class EmbeddedSSLServer(_ProcessServer):
    """Like ``EmbeddedServer``, with ``degu.server.SSLServer(sslconfig, ...)``.

    *sslconfig* must be a ``dict`` (an ``ssl.SSLContext`` cannot be sent to
    another process); it is checked here and turned into a context in the
    child.
    """

    def __init__(
        self,
        sslconfig: 'dict[str, Any]',
        address: 'tuple | str | bytes',
        build_func: 'Callable[..., App]',
        *build_args: object,
        **options: object,
    ) -> None:
        if type(sslconfig) is not dict:
            from ._parse import _TYPE_ERROR

            raise TypeError(_TYPE_ERROR.format('sslconfig', dict, type(sslconfig), sslconfig))
        self.sslconfig = sslconfig
        self._build(sslconfig, address, build_func, build_args, options)

    def __repr__(self) -> str:
        from ._common import _callable_name

        return (
            f'{type(self).__name__}({self.sslconfig!r}, {self.address!r}, '
            f'{_callable_name(self.build_func)})'
        )
