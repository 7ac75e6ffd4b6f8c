"""The degu command line: ``python3 -m degu`` (also installed as ``degu``).

    python3 -m degu files [DIR]           serve a folder (default: the current one)
    python3 -m degu serve MODULE:APP      serve an RGI app
    python3 -m degu serve --wsgi MODULE:APP   serve a WSGI app

Common options: ``--address`` (``HOST:PORT``, ``[IPV6]:PORT``, ``PORT``,
``/path/to.sock`` or ``@abstract``; default ``127.0.0.1:8000``),
``--ssl-cert``/``--ssl-key``/``--ssl-ca``, ``--max-connections``,
``--timeout``, ``--log-level``.  Each response is logged on stderr (peer,
request line, status, bytes, duration) unless ``--quiet``.  SIGINT and
SIGTERM stop the server gracefully: in-flight requests finish.

Exit status: 0 after a clean shutdown, 1 when the server cannot start (a
port in use, a missing module, bad TLS files), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import socket
import sys
import threading

# typing.TYPE_CHECKING without importing typing: see doc/decisions.rst, 'Imports'.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .server import Server

DEFAULT_ADDRESS = '127.0.0.1:8000'
SHUTDOWN_TIMEOUT = 10.0  # seconds in-flight requests get after SIGINT/SIGTERM


class CommandError(Exception):
    """A one-line error for the user (no traceback); ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_address(text: str) -> tuple | str | bytes:
    """Turn a command-line address into a degu *address* value.

    >>> parse_address('127.0.0.1:8080')
    ('127.0.0.1', 8080)
    >>> parse_address('[::1]:8080')
    ('::1', 8080, 0, 0)
    >>> parse_address('9000')
    ('127.0.0.1', 9000)
    >>> parse_address('@degu')
    b'\\x00degu'
    >>> parse_address('/run/app.sock')
    '/run/app.sock'
    """
    if text.startswith('@'):
        return b'\x00' + text[1:].encode() if len(text) > 1 else b''
    if text.startswith(('/', './', '../')) or text.endswith('.sock'):
        return os.path.abspath(text)
    if text.isdigit():
        return ('127.0.0.1', _port(text, text))
    if text.startswith('['):
        (host, sep, rest) = text[1:].partition(']')
        if not sep or not rest.startswith(':'):
            raise CommandError(f'bad address: {text!r} (expected [IPV6]:PORT)', 2)
        scope = 0
        if '%' in host:
            (host, _, name) = host.partition('%')
            try:
                scope = int(name) if name.isdigit() else socket.if_nametoindex(name)
            except OSError:
                raise CommandError(f'bad address: unknown interface {name!r}', 2) from None
        return (host, _port(rest[1:], text), 0, scope)
    (host, sep, port) = text.rpartition(':')
    if not sep or not host or ':' in host:
        raise CommandError(
            f'bad address: {text!r} (expected HOST:PORT, [IPV6]:PORT, PORT, a path or @name)', 2
        )
    return (host, _port(port, text))


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise CommandError(f'bad address: {whole!r} (bad port {text!r})', 2)
    return int(text)


def format_url(address: tuple | str | bytes, tls: bool = False) -> str:
    """How to reach *address*, for the start-up line."""
    scheme = 'https' if tls else 'http'
    if isinstance(address, tuple):
        host = f'[{address[0]}]' if ':' in address[0] else address[0]
        return f'{scheme}://{host}:{address[1]}/'
    if isinstance(address, bytes):
        return f'{scheme} over AF_UNIX @{address[1:].decode(errors="replace")}'
    return f'{scheme} over AF_UNIX {address}'


def load_app(spec: str) -> Callable[..., Any]:
    """Import ``MODULE:APP`` (``APP`` may be dotted; default ``app``) from the current folder."""
    (module_name, _, attr) = spec.partition(':')
    if not module_name:
        raise CommandError(f'bad app: {spec!r} (expected MODULE:APP)', 2)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        if getattr(e, 'name', None) == module_name or module_name.startswith(f'{e.name}.'):
            raise CommandError(f'cannot import module {module_name!r}: {e}') from None
        raise
    obj = module
    for part in (attr or 'app').split('.'):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(f'module {module_name!r} has no attribute {attr or "app"!r}') \
                from None
    if not callable(obj):
        raise CommandError(f'{spec!r} is not callable: {obj!r}')
    return obj


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python3 -m degu',
        description='Serve a folder or an app with degu, an HTTP/1.1 server.',
    )
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    files = sub.add_parser('files', help='serve the files of a folder')
    files.add_argument('directory', nargs='?', default='.', metavar='DIR',
                       help='folder to serve (default: the current one)')
    files.add_argument('--no-listing', action='store_true',
                       help='a folder without index.html is a 404, not a list of its files')
    serve = sub.add_parser('serve', help='serve an RGI (or, with --wsgi, a WSGI) app')
    serve.add_argument('app', metavar='MODULE:APP', help='the app to import, e.g. myapi:app')
    serve.add_argument('--wsgi', action='store_true', help='APP is a WSGI application')
    for p in (files, serve):
        p.add_argument('--address', default=DEFAULT_ADDRESS,
                       help='HOST:PORT, [IPV6]:PORT, PORT, /path/to.sock or @abstract '
                            f'(default: {DEFAULT_ADDRESS})')
        p.add_argument('--ssl-cert', metavar='FILE', help='serve TLS with this certificate')
        p.add_argument('--ssl-key', metavar='FILE', help='the private key of --ssl-cert')
        p.add_argument('--ssl-ca', metavar='FILE',
                       help='require client certificates signed by this CA')
        p.add_argument('--max-connections', type=int, default=50, metavar='N',
                       help='concurrent connections (default: 50)')
        p.add_argument('--timeout', type=float, default=30.0, metavar='SECONDS',
                       help='socket timeout (default: 30)')
        p.add_argument('--log-level', default='warning',
                       choices=('debug', 'info', 'warning', 'error'),
                       help='level of the degu.server log (default: warning)')
        p.add_argument('--quiet', action='store_true', help='no access log line per request')
    return parser


def build_app(args: argparse.Namespace) -> Callable[..., Any]:
    if args.command == 'files':
        from .applib import FilesApp

        directory = os.path.abspath(args.directory)
        if not os.path.isdir(directory):
            raise CommandError(f'not a folder: {args.directory!r}')
        return FilesApp(directory, listing=not args.no_listing)
    app = load_app(args.app)
    if args.wsgi:
        from .wsgi import WSGIApp

        return WSGIApp(app)
    return app


def build_server(args: argparse.Namespace, app: Callable[..., Any]) -> Server:
    from . import server as server_module

    address = parse_address(args.address)
    options = {'max_connections': args.max_connections, 'timeout': args.timeout}
    if args.ssl_cert or args.ssl_key or args.ssl_ca:
        if not (args.ssl_cert and args.ssl_key):
            raise CommandError('--ssl-cert and --ssl-key go together', 2)
        sslconfig = {
            'cert_file': os.path.abspath(args.ssl_cert),
            'key_file': os.path.abspath(args.ssl_key),
        }
        if args.ssl_ca:
            sslconfig['ca_file'] = os.path.abspath(args.ssl_ca)
        else:
            sslconfig['allow_unauthenticated_clients'] = True
        try:
            return server_module.SSLServer(sslconfig, address, app, **options)
        except (OSError, ValueError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise CommandError(f'cannot set up TLS: {e}') from None
    return server_module.Server(address, app, **options)


def _setup_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', '%Y-%m-%d %H:%M:%S'))
    for name, level in (('degu.server', args.log_level.upper()),
                        ('degu.access', 'WARNING' if args.quiet else 'INFO')):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)
        logger.propagate = False


def run(args: argparse.Namespace) -> int:
    _setup_logging(args)
    app = build_app(args)
    try:
        server = build_server(args, app)
    except OSError as e:
        raise CommandError(f'cannot listen on {args.address}: {e.strerror or e}') from None
    except (TypeError, ValueError) as e:
        raise CommandError(f'bad option: {e}', 2) from None
    what = f'folder {os.path.abspath(args.directory)}' if args.command == 'files' else args.app
    print(f'Serving {what} on {format_url(server.address, hasattr(server, "sslctx"))} '
          f'(Ctrl-C to stop)', file=sys.stderr, flush=True)
    stop = threading.Event()
    received = []

    def on_signal(signum, frame):
        received.append(signum)
        if stop.is_set():  # a second signal: stop waiting for in-flight requests
            print('degu: error: second signal, exiting at once', file=sys.stderr, flush=True)
            os._exit(1)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, name='degu serve_forever')
    thread.start()
    try:
        while not stop.wait(0.5):
            if not thread.is_alive():  # pragma: no cover - serve_forever() failed
                raise CommandError('the server stopped unexpectedly')
    finally:
        stop.set()
        name = signal.Signals(received[0]).name if received else 'exit'
        print(f'Stopping ({name}): finishing in-flight requests...', file=sys.stderr, flush=True)
        clean = server.shutdown(SHUTDOWN_TIMEOUT)
        thread.join(SHUTDOWN_TIMEOUT + 5)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if clean else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except CommandError as e:
        print(f'degu: error: {e}', file=sys.stderr)
        return e.code


if __name__ == '__main__':
    sys.exit(main())
