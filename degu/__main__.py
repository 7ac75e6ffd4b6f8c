"""The degu command line: ``python3 -m degu`` (also installed as ``degu``).

    python3 -m degu files [DIR] [PORT]    serve a folder (default: the current one)
    python3 -m degu serve MODULE:APP      serve an RGI app (MODULE:FACTORY() calls a factory)
    python3 -m degu serve --wsgi MODULE:APP   serve a WSGI app

Common options: ``--address``/``-b``/``--bind`` (``HOST:PORT``, ``HOST``,
``:PORT``, ``[IPV6]:PORT``, ``PORT``, ``/path/to.sock`` or ``@abstract``;
default ``127.0.0.1:8000``), ``-p``/``--port``,
``--ssl-cert``/``--ssl-key``/``--ssl-ca``, the server limits
(``--max-connections``, ``--timeout``, ``--idle-timeout``...), ``--log-level``.
Each response is logged on stderr in the Combined Log Format unless
``--quiet`` (``--access-log FILE``, ``--access-log-format``).  SIGINT and
SIGTERM stop the server gracefully: in-flight requests finish.  SIGHUP
reopens the ``--access-log`` file (after logrotate moved it), and with
``--workers N`` also replaces the workers (doc/cli.rst).

Exit status: 0 after a clean shutdown, 1 when the server cannot start (a
port in use, a missing module, bad TLS files), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import re
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

DEFAULT_HOST = '127.0.0.1'
DEFAULT_PORT = 8000
DEFAULT_ADDRESS = f'{DEFAULT_HOST}:{DEFAULT_PORT}'
SHUTDOWN_TIMEOUT = 10.0  # seconds in-flight requests get after SIGINT/SIGTERM
MAX_PEM_SIZE = 1024 * 1024  # 1 MiB: more than any certificate chain a server presents

# A host name or an IPv4 address, as the command line takes it without a port.
_HOST = re.compile(r'[A-Za-z0-9_.-]+')
# MODULE:FACTORY(): a factory called with no arguments, as gunicorn and uvicorn take it.
_CALL = re.compile(r'(.*)\((.*)\)')

# The Server options the command line offers, each as --name-with-dashes.
_SECONDS = ('timeout', 'idle_timeout', 'transfer_timeout')
_METAVARS = {'max_body': 'BYTES', 'max_header_bytes': 'BYTES', 'min_rate': 'BYTES_PER_S'}


class CommandError(Exception):
    """A one-line error for the user (no traceback); ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_address(text: str, port: int | None = None) -> tuple | str | bytes:
    """Turn a command-line address into a degu *address* value.

    A host alone listens on port 8000 (or *port*, from ``--port``), a port
    alone on 127.0.0.1:

    >>> parse_address('127.0.0.1:8080')
    ('127.0.0.1', 8080)
    >>> parse_address('[::1]:8080')
    ('::1', 8080, 0, 0)
    >>> parse_address('9000')
    ('127.0.0.1', 9000)
    >>> parse_address(':9000')
    ('127.0.0.1', 9000)
    >>> parse_address('localhost')
    ('localhost', 8000)
    >>> parse_address('0.0.0.0', port=8080)
    ('0.0.0.0', 8080)
    >>> parse_address('@degu')
    b'\\x00degu'
    >>> parse_address('/run/app.sock')
    '/run/app.sock'
    """
    if text.startswith('@') or text.startswith(('/', './', '../')) or text.endswith('.sock'):
        if port is not None:
            raise CommandError(f'bad address: {text!r} is an AF_UNIX socket; it takes no --port',
                               2)
        if text.startswith('@'):
            return b'\x00' + text[1:].encode() if len(text) > 1 else b''
        return os.path.abspath(text)
    if text.isdigit():
        return (DEFAULT_HOST, _with_port(text, text, port))
    if text.startswith('['):
        (host, sep, rest) = text[1:].partition(']')
        if not sep or (rest and not rest.startswith(':')):
            raise CommandError(f'bad address: {text!r} (expected [IPV6]:PORT)', 2)
        scope = 0
        if '%' in host:
            (host, _, name) = host.partition('%')
            try:
                scope = int(name) if name.isdigit() else socket.if_nametoindex(name)
            except OSError:
                raise CommandError(f'bad address: unknown interface {name!r}', 2) from None
        return (host, _with_port(rest[1:] if rest else None, text, port), 0, scope)
    (host, sep, port_part) = text.rpartition(':')
    port_text = port_part if sep else None
    if not sep:
        host = text
    if ':' in host:
        raise CommandError(f'bad address: {text!r} (an IPv6 address goes in brackets: '
                           '[IPV6]:PORT)', 2)
    if not host and sep:
        host = DEFAULT_HOST
    if not _HOST.fullmatch(host):
        raise CommandError(
            f'bad address: {text!r} (expected HOST:PORT, HOST, :PORT, [IPV6]:PORT, PORT, '
            'a path or @name)', 2
        )
    return (host, _with_port(port_text, text, port))


def _with_port(text: str | None, whole: str, port: int | None) -> int:
    if text is None:
        return DEFAULT_PORT if port is None else port
    if port is not None:
        raise CommandError(f'bad address: {whole!r} has a port already; --port {port} too', 2)
    return _port(text, whole)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise CommandError(f'bad address: {whole!r} (bad port {text!r})', 2)
    return int(text)


def format_address(address: tuple | str | bytes | socket.socket) -> str:
    """*address* as the command line writes it, for error messages.

    >>> format_address(('::1', 8000, 0, 0))
    '[::1]:8000'
    """
    if isinstance(address, socket.socket):  # inherited (--fd, socket activation)
        address = address.getsockname()
    if isinstance(address, tuple):
        host = f'[{address[0]}]' if ':' in address[0] else address[0]
        return f'{host}:{address[1]}'
    if isinstance(address, bytes):
        return f'@{address[1:].decode(errors="replace")}'
    return str(address)


def format_url(address: tuple | str | bytes, tls: bool = False) -> str:
    """How to reach *address*, for the start-up line."""
    scheme = 'https' if tls else 'http'
    if isinstance(address, tuple):
        return f'{scheme}://{format_address(address)}/'
    return f'{scheme} over AF_UNIX {format_address(address)}'


def _user_frames(what: str, exc: BaseException) -> str:
    """*what*, the error, then where it happened in the user's code (not in degu's).

    The first line is the error; the frames under it are those of the
    user's own files (the module that failed, a factory), most recent last.
    importlib's and degu's frames say nothing about the user's mistake.
    """
    import traceback

    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    machinery = os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep
    if isinstance(exc, SyntaxError):
        lines = [f'{what}: {type(exc).__name__}: {exc.msg}']
    else:
        lines = [f'{what}: {type(exc).__name__}: {exc}']
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(('<', here, machinery))
    ]
    lines.extend(line.rstrip('\n') for line in traceback.format_list(frames))
    if isinstance(exc, SyntaxError) and exc.filename:
        lines.append(f'  File "{exc.filename}", line {exc.lineno}')
        if exc.text:
            lines.append(f'    {exc.text.strip()}')
    return '\n'.join(lines)


def load_app(spec: str) -> Callable[..., Any]:
    """Import ``MODULE:APP`` from the current folder and return the app.

    ``APP`` may be dotted and defaults to ``app``; ``MODULE:FACTORY()``
    calls ``FACTORY`` with no arguments and serves what it returns.
    """
    (module_name, _, attr) = spec.partition(':')
    call = _CALL.fullmatch(attr)
    if call is not None:
        if call.group(2).strip():
            raise CommandError(f'bad app: {spec!r} (a factory is called with no arguments: '
                               'MODULE:FACTORY())', 2)
        attr = call.group(1)
    if not module_name or (call is not None and not attr):
        raise CommandError(f'bad app: {spec!r} (expected MODULE:APP or MODULE:FACTORY())', 2)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    what = f'cannot import module {module_name!r}'
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name or module_name.startswith(f'{e.name}.'):
            raise CommandError(f'{what}: {e}') from None
        raise CommandError(_user_frames(what, e)) from None
    except Exception as e:
        raise CommandError(_user_frames(what, e)) from None
    obj = module
    for part in (attr or 'app').split('.'):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(f'module {module_name!r} has no attribute {attr or "app"!r}') \
                from None
    if not callable(obj):
        raise CommandError(f'{spec!r} is not callable: {obj!r}')
    if call is not None:
        try:
            obj = obj()
        except Exception as e:
            raise CommandError(_user_frames(f'{spec!r} failed', e)) from None
        if not callable(obj):
            raise CommandError(f'{spec!r} returned {obj!r}, which is not callable')
    return obj


def looks_like_wsgi(app: Callable[..., Any]) -> bool:
    """True if *app* takes ``(environ, start_response)``: two positional arguments, not three.

    An RGI app takes ``(session, request, api)``.

    >>> looks_like_wsgi(lambda environ, start_response: [])
    True
    >>> looks_like_wsgi(lambda session, request, api: None)
    False
    """
    import inspect

    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):  # a builtin without a signature: cannot tell
        return False

    def takes(count):
        try:
            signature.bind(*range(count))
        except TypeError:
            return False
        return True

    return takes(2) and not takes(3)


def _program_name() -> str:
    """``degu`` for the console script, ``python3 -m degu`` for the module."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ''
    if not name or name == '-c' or name.endswith('.py'):
        return 'python3 -m degu'
    return name


def _version() -> str:
    from . import __version__
    from ._parse import CORE

    return f'degu {__version__} (Python {sys.version.split()[0]}, {CORE} core)'


def build_parser() -> argparse.ArgumentParser:
    from .server import _OPTIONS

    parser = argparse.ArgumentParser(
        prog=_program_name(),
        description='Serve a folder or an app with degu, an HTTP/1.1 server.',
    )
    parser.add_argument('--version', action='version', version=_version(),
                        help='print the degu and Python versions and the core, and exit')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    files = sub.add_parser('files', help='serve the files of a folder')
    files.add_argument('directory', nargs='?', metavar='DIR',
                       help='folder to serve (default: the current one); a number that '
                            'is not a folder is the PORT, as with python3 -m http.server')
    files.add_argument('port_argument', nargs='?', metavar='PORT',
                       help='port to listen on (as --port)')
    files.add_argument('-d', '--directory', dest='directory_option', metavar='DIR',
                       help='folder to serve, as the DIR argument')
    files.add_argument('--no-listing', action='store_true',
                       help='a folder without index.html is a 404, not a list of its files')
    serve = sub.add_parser('serve', help='serve an RGI (or, with --wsgi, a WSGI) app')
    serve.add_argument('app', metavar='MODULE:APP',
                       help='the app to import, e.g. myapi:app, or a factory to call with '
                            'no arguments, e.g. myapi:create_app()')
    serve.add_argument('--wsgi', action='store_true', help='APP is a WSGI application')
    for p in (files, serve):
        p.add_argument('-b', '--bind', '--address', dest='address', metavar='ADDRESS',
                       help='HOST:PORT, HOST, :PORT, [IPV6]:PORT, PORT, /path/to.sock or '
                            f'@abstract (default: {DEFAULT_ADDRESS})')
        p.add_argument('-p', '--port', metavar='PORT',
                       help=f'port to listen on (default: {DEFAULT_PORT})')
        p.add_argument('--ssl-cert', metavar='FILE',
                       help='serve TLS with this certificate (PEM; it may hold the key too)')
        p.add_argument('--ssl-key', metavar='FILE', help='the private key of --ssl-cert (PEM)')
        p.add_argument('--ssl-ca', metavar='FILE',
                       help='require client certificates signed by this CA')
        for name, (default, types, _, _) in _OPTIONS.items():
            unit = ' s' if name in _SECONDS else ''
            shown = 'no limit' if default is None else f'{default}{unit}'
            p.add_argument(f'--{name.replace("_", "-")}', dest=name,
                           metavar=_METAVARS.get(name, 'SECONDS' if name in _SECONDS else 'N'),
                           help=f'Server option {name} (default: {shown})')
        p.add_argument('--log-level', default='warning', type=str.lower,
                       choices=('debug', 'info', 'warning', 'error'),
                       help='level of the degu.server log, in any case (default: warning)')
        p.add_argument('--quiet', action='store_true', help='no access log line per request')
        _add_proxy_options(p)
        _add_access_log_options(p)
        _add_process_options(p)
    for p in (files, serve):
        p.set_defaults(command_parser=p)
    return parser


def _add_proxy_options(p: argparse.ArgumentParser) -> None:
    # The Server options for running behind a load balancer (doc/cli.rst); they
    # are not numbers, so the loop over _OPTIONS above leaves them out.
    p.add_argument('--forwarded-allow-ips', dest='forwarded_allow_ips', metavar='IPS',
                   help='trust X-Forwarded-For, X-Forwarded-Proto and Forwarded from these '
                        "proxies: addresses or networks separated by commas, 'unix' for "
                        "AF_UNIX peers, '*' for anyone (default: nobody)")
    p.add_argument('--proxy-protocol', dest='proxy_protocol', action='store_true', default=None,
                   help='every connection starts with a PROXY protocol header, version 1 or '
                        '2 (HAProxy send-proxy, send-proxy-v2); one without is closed')
    p.add_argument('--root-path', dest='root_path', metavar='PREFIX',
                   help='the app is mounted under PREFIX, e.g. /api: request.mount and '
                        'SCRIPT_NAME get it for requests under it')


def _add_access_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument('--access-log', metavar='FILE',
                   help="append the access log to FILE ('-': stderr, the default); "
                        'SIGHUP reopens it')
    p.add_argument('--access-log-format', metavar='FORMAT', default='combined',
                   help="'combined' (default), 'common', or a template of {field} names, "
                        'e.g. \'{host} "{request}" {status} {duration_ms}\'')


class _AccessLogFile(logging.FileHandler):
    """The ``--access-log`` file: appended to, and reopened on SIGHUP."""

    def reopen(self) -> None:
        # The new file is opened before the old one is closed: no line is lost,
        # and a file that cannot be opened any more leaves the old one in use.
        stream = self._open()
        self.acquire()
        try:
            (old, self.stream) = (self.stream, stream)
        finally:
            self.release()
        if old is not None:
            old.close()


def _access_log_handler(args: argparse.Namespace) -> logging.Handler | None:
    """The handler of ``--access-log`` and ``--access-log-format``; ``None`` with ``--quiet``."""
    from .server import AccessFormatter

    try:
        formatter = AccessFormatter(args.access_log_format)
    except ValueError as e:
        raise CommandError(f'--access-log-format: {str(e).removeprefix("access log format: ")}',
                           2) from None
    if args.quiet:
        if args.access_log is not None:
            raise CommandError('--quiet turns the access log off; --access-log turns it on', 2)
        return None
    handler: logging.Handler
    if args.access_log in (None, '-'):
        handler = logging.StreamHandler(sys.stderr)
    else:
        path = os.path.abspath(args.access_log)
        try:
            handler = _AccessLogFile(path, mode='a', encoding='utf-8')
        except OSError as e:
            raise CommandError(f'--access-log: cannot open {path!r}: {e.strerror or e}') \
                from None
    handler.setFormatter(formatter)
    return handler


def _reopen_access_log() -> str:
    """What SIGHUP did: reopened the ``--access-log`` file, or nothing."""
    for handler in logging.getLogger('degu.access').handlers:
        if isinstance(handler, _AccessLogFile):
            try:
                handler.reopen()
            except OSError as e:
                return f'cannot reopen the access log {handler.baseFilename!r}: {e}'
            return f'access log {handler.baseFilename!r} reopened'
    return 'nothing to reload, still serving'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse *argv*; an unknown option is reported with the usage of its command."""
    parser = build_parser()
    (args, extra) = parser.parse_known_args(argv)
    if extra:
        args.command_parser.error(f'unrecognized arguments: {" ".join(extra)}')
    return args


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Server options given on the command line, checked as ``Server()`` checks them."""
    from .server import _NUMBER, _OPTIONS, _PROXY_OPTIONS, Server, _check_options

    options: dict[str, Any] = {}
    for name, (_, types, _, _) in _OPTIONS.items():
        text = getattr(args, name)
        if text is None:
            continue
        flag = f'--{name.replace("_", "-")}'
        try:
            value = int(text) if types is not _NUMBER or text.isdigit() else float(text)
        except ValueError:
            kind = 'a number' if types is _NUMBER else 'an integer'
            raise CommandError(f'{flag}: need {kind}; got {text!r}', 2) from None
        if not math.isfinite(value):
            raise CommandError(f'{flag}: need a finite number; got {text!r}', 2)
        try:
            _check_options(Server, {name: value})
        except (TypeError, ValueError) as e:
            raise CommandError(f'{flag}: {e}', 2) from None
        options[name] = value
    for name in _PROXY_OPTIONS:
        value = getattr(args, name)
        if value is None:
            continue
        try:
            _check_options(Server, {name: value})
        except (TypeError, ValueError) as e:
            raise CommandError(f'--{name.replace("_", "-")}: {e}', 2) from None
        options[name] = value
    return options


def resolve_address(args: argparse.Namespace) -> tuple | str | bytes:
    """The address to listen on, from ``--address``/``--bind``, ``--port`` and ``files PORT``."""
    port_text = args.port
    if args.command == 'files':
        if (args.directory is not None and args.directory.isdigit()
                and args.port_argument is None and not os.path.isdir(args.directory)):
            (args.directory, args.port_argument) = (None, args.directory)
        if args.port_argument is not None:
            if port_text is not None:
                raise CommandError(f'the port is given twice: {args.port_argument} and '
                                   f'--port {port_text}', 2)
            port_text = args.port_argument
    port = None
    if port_text is not None:
        if not port_text.isdigit() or int(port_text) > 65535:
            raise CommandError(f'bad port: {port_text!r} (need 0 to 65535)', 2)
        port = int(port_text)
    return parse_address(args.address or DEFAULT_HOST, port)


def _folder(args: argparse.Namespace) -> str:
    if args.directory is not None and args.directory_option is not None:
        raise CommandError(f'the folder is given twice: {args.directory!r} and '
                           f'--directory {args.directory_option!r}', 2)
    return args.directory_option or args.directory or '.'


def build_app(args: argparse.Namespace) -> Callable[..., Any]:
    if args.command == 'files':
        from .applib import FilesApp

        folder = _folder(args)
        directory = os.path.abspath(folder)
        if not os.path.isdir(directory):
            raise CommandError(f'not a folder: {folder!r}')
        return FilesApp(directory, listing=not args.no_listing)
    app = load_app(args.app)
    if args.wsgi:
        from .wsgi import WSGIApp

        return WSGIApp(app)
    if looks_like_wsgi(app):
        raise CommandError(f'{args.app!r} takes (environ, start_response), a WSGI '
                           'application: serve it with --wsgi', 2)
    return app


def _read_pem(flag: str, path: str) -> bytes:
    if not os.path.exists(path):
        raise CommandError(f'{flag}: no such file: {path!r}')
    if not os.path.isfile(path):
        raise CommandError(f'{flag}: not a file: {path!r}')
    try:
        with open(path, 'rb') as f:
            return f.read(MAX_PEM_SIZE)
    except OSError as e:
        raise CommandError(f'{flag}: cannot read {path!r}: {e.strerror or e}') from None


def tls_config(args: argparse.Namespace) -> dict[str, object]:
    """The sslconfig of ``--ssl-cert``/``--ssl-key``/``--ssl-ca``, each file checked.

    A mistake is reported with the flag and the file it names, never as a
    failure to listen.  Without ``--ssl-key`` the key is read from the
    ``--ssl-cert`` file (a PEM file holding both).
    """
    import ssl

    if not args.ssl_cert:
        flag = '--ssl-key' if args.ssl_key else '--ssl-ca'
        raise CommandError(f'{flag} needs --ssl-cert', 2)
    cert = os.path.abspath(args.ssl_cert)
    key = os.path.abspath(args.ssl_key) if args.ssl_key else cert
    key_flag = '--ssl-key' if args.ssl_key else '--ssl-cert'
    cert_data = _read_pem('--ssl-cert', cert)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cert)
    except ssl.SSLError:
        raise CommandError(f'--ssl-cert: no PEM certificate in {cert!r}') from None
    key_data = _read_pem('--ssl-key', key) if args.ssl_key else cert_data
    if b'PRIVATE KEY-----' not in key_data:
        if args.ssl_key:
            raise CommandError(f'--ssl-key: no PEM private key in {key!r}')
        raise CommandError(f'--ssl-cert: no private key in {cert!r} (give it with --ssl-key)')

    def no_passphrase():
        raise CommandError(f'{key_flag}: the private key in {key!r} is encrypted; degu needs '
                           'it without a passphrase')

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, no_passphrase)
    except ssl.SSLError as e:
        if e.reason == 'KEY_VALUES_MISMATCH':
            raise CommandError(f'{key_flag}: the private key in {key!r} does not match the '
                               f'certificate in {cert!r}') from None
        raise CommandError(f'{key_flag}: cannot load the private key in {key!r}: '
                           f'{e.reason or e}') from None
    sslconfig: dict[str, object] = {'cert_file': cert, 'key_file': key}
    if args.ssl_ca:
        ca = os.path.abspath(args.ssl_ca)
        _read_pem('--ssl-ca', ca)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=ca)
        except ssl.SSLError:
            raise CommandError(f'--ssl-ca: no PEM certificate in {ca!r}') from None
        sslconfig['ca_file'] = ca
    else:
        sslconfig['allow_unauthenticated_clients'] = True
    return sslconfig


def build_server(args: argparse.Namespace, app: Callable[..., Any],
                 address: tuple | str | bytes | socket.socket,
                 options: dict[str, Any]) -> Server:
    from . import server as server_module

    if args.ssl_cert or args.ssl_key or args.ssl_ca:
        sslconfig = tls_config(args)
        try:
            sslctx = server_module.build_server_sslctx(sslconfig)
        except (OSError, ValueError) as e:  # pragma: no cover - tls_config() checked the files
            raise CommandError(f'cannot set up TLS: {e}') from None
        return server_module.SSLServer(sslctx, address, app, **options)
    return server_module.Server(address, app, **options)


def _setup_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', '%Y-%m-%d %H:%M:%S'))
    access = _access_log_handler(args)
    for name, level, out in (('degu.server', args.log_level.upper(), handler),
                             ('degu.access', 'WARNING' if access is None else 'INFO', access)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if out is not None:
            logger.addHandler(out)
        logger.propagate = False


def run(args: argparse.Namespace) -> int:
    options = server_options(args)
    address = listen_address(args)
    _setup_logging(args)
    if args.workers is not None:
        return run_workers(args, address, options)
    app = build_app(args)
    try:
        server = build_server(args, app, address, options)
    except OSError as e:
        raise CommandError(f'cannot listen on {format_address(address)}: {e.strerror or e}') \
            from None
    wake = threading.Event()
    received: list[int] = []  # the signals, in order; the main loop reads them
    stopping = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum, frame):
        if signum in stopping and any(s in stopping for s in received):
            # A second stop signal: stop waiting for in-flight requests.
            _say('degu: error: second signal, exiting at once')
            os._exit(1)
        received.append(signum)
        wake.set()

    # SIGHUP asks daemons to reload; degu reopens its access log file (as
    # logrotate expects), and its default action (terminate) would drop the
    # in-flight requests.
    previous = {s: signal.signal(s, on_signal) for s in (*stopping, signal.SIGHUP)}
    thread = threading.Thread(target=server.serve_forever, name='degu serve_forever')
    thread.start()
    # Announced once the signal handlers are in place: a script that waits for
    # this line may signal the server at once.
    what = (f'folder {os.path.abspath(_folder(args))}' if args.command == 'files'
            else args.app)
    _say(f'Serving {what} on {format_url(server.address, hasattr(server, "sslctx"))} '
         f'(Ctrl-C to stop)')
    _notify_service_manager(f'READY=1\nMAINPID={os.getpid()}')
    log = logging.getLogger('degu.server')
    seen = 0
    try:
        while True:
            wake.wait(0.5)
            wake.clear()
            (new, seen) = (received[seen:], len(received))
            for signum in new:
                if signum == signal.SIGHUP:
                    log.info('SIGHUP received: %s', _reopen_access_log())
            if any(s in stopping for s in new):
                break
            if not thread.is_alive():  # pragma: no cover - serve_forever() failed
                raise CommandError('the server stopped unexpectedly')
    finally:
        stops = [s for s in received if s in stopping]
        name = signal.Signals(stops[0]).name if stops else 'exit'
        _say(f'Stopping ({name}): finishing in-flight requests...')
        _notify_service_manager('STOPPING=1')
        clean = server.shutdown(SHUTDOWN_TIMEOUT)
        thread.join(SHUTDOWN_TIMEOUT + 5)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if clean else 1


# --------------------------------------------------------------------------
# Processes: --workers, inherited sockets (--fd, systemd socket activation),
# readiness (NOTIFY_SOCKET).  See doc/cli.rst and doc/degu.workers.rst.


def _add_process_options(p: argparse.ArgumentParser) -> None:
    p.add_argument('--workers', metavar='N',
                   help='serve from N worker processes under a supervising parent (SIGHUP '
                        'replaces them, SIGTTIN/SIGTTOU add or remove one)')
    p.add_argument('--fd', metavar='FD|NAME',
                   help='serve on an inherited listening socket: a file descriptor number, '
                        'or the name of a socket passed by systemd (LISTEN_FDNAMES)')


def _workers_count(args: argparse.Namespace) -> int:
    from .workers import MAX_WORKERS

    text = args.workers
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise CommandError(f'--workers: need 1 <= N <= {MAX_WORKERS}; got {text!r}', 2)
    return int(text)


def listen_address(args: argparse.Namespace) -> tuple | str | bytes | socket.socket:
    """The address to bind (``resolve_address()``), or an inherited listening socket.

    The socket comes from ``--fd`` or, without it, from systemd socket
    activation (``LISTEN_FDS``), which must then pass exactly one socket.
    The ``LISTEN_*`` variables are removed from the environment either way,
    so that nothing this process starts takes them for its own.
    """
    from .workers import listening_socket, systemd_sockets

    try:
        inherited = systemd_sockets()
    except ValueError as e:
        raise CommandError(f'socket activation: {e}') from None
    choice = args.fd
    if choice is None and not inherited:
        return resolve_address(args)
    given = [flag for (flag, value) in (('--address', args.address), ('--port', args.port),
                                        ('PORT', getattr(args, 'port_argument', None)))
             if value is not None]
    source = f'--fd {choice}' if choice is not None else 'the socket systemd passed'
    if given:
        for (_, sock) in inherited:
            sock.close()
        raise CommandError(f'{given[0]} and {source}: give one or the other', 2)
    names = [f'{name} (fd {sock.fileno()})' for (name, sock) in inherited]
    if choice is None:
        if len(inherited) > 1:
            for (_, sock) in inherited:
                sock.close()
            raise CommandError(f'systemd passed {len(inherited)} sockets, {", ".join(names)}: '
                               'choose one with --fd', 2)
        return inherited[0][1]
    chosen = [sock for (name, sock) in inherited
              if (str(sock.fileno()) if choice.isdigit() else name) == choice]
    for (_, sock) in inherited:
        if sock not in chosen[:1]:
            sock.close()
    if chosen:
        return chosen[0]
    if not choice.isdigit():
        known = f'; systemd passed {", ".join(names)}' if names else ' (no LISTEN_FDS)'
        raise CommandError(f'--fd {choice}: no socket of that name{known}', 2)
    try:
        return listening_socket(int(choice))
    except ValueError as e:
        raise CommandError(f'--fd {choice}: {str(e).partition(": ")[2]}', 2) from None


def _notify_service_manager(state: str) -> None:
    from .workers import notify

    notify(state)


class _AppFactory:
    """Builds the app in each worker from ``MODULE:FACTORY()`` (a module-level object)."""

    def __init__(self, spec: str, factory: Callable[..., Any], wsgi: bool) -> None:
        self.spec = spec
        self.factory = factory
        self.wsgi = wsgi

    def __call__(self) -> Callable[..., Any]:
        app = self.factory()
        if not callable(app):
            raise TypeError(f'{self.spec!r} returned {app!r}, which is not callable')
        if self.wsgi:
            from .wsgi import WSGIApp

            return WSGIApp(app)
        if looks_like_wsgi(app):
            raise TypeError(f'{self.spec!r} takes (environ, start_response), a WSGI '
                            'application: serve it with --wsgi')
        return app


def run_workers(args: argparse.Namespace, address: tuple | str | bytes | socket.socket,
                options: dict[str, Any]) -> int:
    """Serve with ``--workers N``: a parent supervising N worker processes."""
    from .workers import Workers

    count = _workers_count(args)
    server_log = logging.getLogger('degu.server')
    workers_log = logging.getLogger('degu.workers')
    workers_log.setLevel(server_log.level)
    for handler in server_log.handlers:
        workers_log.addHandler(handler)
    workers_log.propagate = False
    factory = False
    spec = getattr(args, 'app', '') or ''
    call = _CALL.fullmatch(spec.partition(':')[2])
    if args.command == 'serve' and call is not None and not call.group(2).strip():
        # Each worker calls the factory, so that what it opens (files,
        # connections) is its own; the module is imported once, here.
        app: Callable[..., Any] = _AppFactory(spec, load_app(spec.rpartition('(')[0]),
                                              args.wsgi)
        factory = True
    else:
        app = build_app(args)
    sslconfig = tls_config(args) if (args.ssl_cert or args.ssl_key or args.ssl_ca) else None
    try:
        workers = Workers(address, app, count, factory=factory, sslconfig=sslconfig,
                          stop_timeout=SHUTDOWN_TIMEOUT, **options)
    except OSError as e:
        raise CommandError(f'cannot listen on {format_address(address)}: {e.strerror or e}') \
            from None
    what = (f'folder {os.path.abspath(_folder(args))}' if args.command == 'files'
            else args.app)
    url = format_url(workers.address, sslconfig is not None)

    def serving():
        _say(f'Serving {what} on {url} with {count} workers (Ctrl-C to stop)')

    try:
        # SIGHUP: the access log file is reopened before the new workers are
        # forked, so that they write to the file logrotate left in its place.
        clean = workers.serve_forever(
            signals=True, notify=True, on_ready=serving,
            on_reload=lambda: server_log.info('SIGHUP received: %s', _reopen_access_log()),
        )
    except RuntimeError as e:
        raise CommandError(str(e)) from None
    return 0 if clean else 1


def _say(line: str) -> None:
    """Write *line* and its newline to stderr in one write, and flush.

    print() writes the text and the newline separately, and a server thread
    logging meanwhile (an access log line on stderr) lands between the two:
    a line of one inside a line of the other.  The logging handler writes
    each record in one call too, so whole lines never mix.
    """
    sys.stderr.write(line + '\n')
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except CommandError as e:
        print(f'degu: error: {e}', file=sys.stderr)
        return e.code


if __name__ == '__main__':
    sys.exit(main())
