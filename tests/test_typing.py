"""Type hints on the public API (see doc/decisions.rst, 'Imports'): the
``py.typed`` marker, an annotation on every parameter and return of every
public callable, and, when mypy is installed, a clean mypy run over the
annotated modules and a clean ``mypy --strict`` run over the programs of
doc/examples/, as a user runs it (from outside the checkout).

Covered here: ``degu`` itself, the modules around the engine, the server and
the client, and of the engine the RGI values (``degu._body``) and the types
made for annotations (``degu._types``).  The other engine modules
(``degu._parse``, ``_io``, ``base``) get their hints separately; add them to
``MODULES`` then.

The rule checked: every parameter but ``self``/``cls`` is annotated,
``*args`` and ``**kwargs`` included, and so is the return (``-> None`` too).
"""

import importlib
import inspect
import os
import subprocess
import sys

import pytest
from helpers import check_installed, copy_examples, user_env

import degu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(degu.__file__)))

MODULES = (
    'degu',
    'degu.__main__',
    'degu._body',
    'degu._common',
    'degu._types',
    'degu.applib',
    'degu.client',
    'degu.misc',
    'degu.rgi',
    'degu.server',
    'degu.sslhelpers',
    'degu.util',
    'degu.wsgi',
)

# Besides the public names, these special methods are API too: an RGI app is
# called, a fixture is used with `with`.
DUNDER_METHODS = ('__init__', '__call__', '__enter__', '__exit__')


def _public_names(module):
    names = getattr(module, '__all__', None)
    if names is None:  # degu.__main__: every public name defined there
        names = [name for name in vars(module) if not name.startswith('_')]
    return names


def _methods(cls):
    """The public methods of *cls*, also those inherited from a (private) class of
    ``MODULES``, such as ``TempServer.terminate()``; not those of ``io.RawIOBase``..."""
    methods = {}
    for klass in cls.__mro__:
        if klass.__module__ not in MODULES:
            continue
        for (attr, value) in vars(klass).items():
            if attr.startswith('_') and attr not in DUNDER_METHODS:
                continue
            if inspect.isfunction(value) and value.__module__ == 'typing':
                continue  # the __init__ that typing gives a Protocol class
            methods.setdefault(attr, value)
    return methods


def _own_callables(module):
    """``(qualified name, function)`` for each public function, class and method
    that *module* defines itself (re-exports, such as ``degu.misc.parse_headers``
    from ``degu.base``, are checked where they are defined)."""
    for name in _public_names(module):
        obj = getattr(module, name)
        if not callable(obj) or getattr(obj, '__module__', None) != module.__name__:
            continue
        if not inspect.isclass(obj):
            yield (f'{module.__name__}.{name}', obj)
            continue
        for (attr, value) in _methods(obj).items():
            label = f'{module.__name__}.{name}.{attr}'
            if isinstance(value, (staticmethod, classmethod)):
                yield (label, value.__func__)
            elif isinstance(value, property):
                yield (label, value.fget)
            elif inspect.isfunction(value):
                yield (label, value)


def _missing_annotations(func):
    sig = inspect.signature(func)
    missing = [
        param.name
        for param in sig.parameters.values()
        if param.annotation is inspect.Parameter.empty and param.name not in ('self', 'cls')
    ]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append('return')
    return missing


def _all_callables():
    for module_name in MODULES:
        yield from _own_callables(importlib.import_module(module_name))


def test_py_typed():
    # PEP 561: the marker that tells type checkers the package has inline hints.
    path = os.path.join(os.path.dirname(degu.__file__), 'py.typed')
    assert os.path.isfile(path)
    with open(path, 'rb') as fp:
        assert fp.read() == b''


def test_checker_sees_something():
    # Guard against _own_callables() quietly finding nothing.
    labels = {label for (label, _) in _all_callables()}
    for label in (
        'degu.EmbeddedServer.__init__',
        'degu.__main__.parse_address',
        'degu.applib.FilesApp.__call__',
        'degu.misc.TempPKI.server_sslconfig',
        'degu.misc.TempServer.terminate',
        'degu.misc.TempSSLServer.__enter__',
        'degu.EmbeddedSSLServer.terminate',
        'degu.misc.mkreq',
        'degu.rgi.Validator.on_connect',
        'degu.sslhelpers.PKI.create_key',
        'degu.util.unquote',
        'degu.wsgi.WSGIInput.read',
        'degu.server.Server.__init__',
        'degu.server.Server.shutdown',
        'degu.server.SSLServer.__exit__',
        'degu.server.SSLServer.serve_forever',
        'degu.server.build_server_sslctx',
        'degu.client.Client.connect',
        'degu.client.SSLClient.create_socket',
        'degu.client.SSLClient.set_base_header',
        'degu.client.Connection.request',
        'degu.client.Connection.closed',
        'degu.client.Connection.get_range',
        'degu.client.build_client_sslctx',
        'degu.client.is_temp_network_error',
    ):
        assert label in labels
    assert 'degu.misc.parse_headers' not in labels  # defined in degu._parse
    assert 'degu.server.Session.__init__' not in labels  # defined in degu._body
    assert 'degu.client.ConnectionClosed.__init__' not in labels


@pytest.mark.parametrize('module_name', MODULES)
def test_public_api_annotated(module_name):
    module = importlib.import_module(module_name)
    missing = {}
    for (label, func) in _own_callables(module):
        names = _missing_annotations(func)
        if names:
            missing[label] = names
    assert missing == {}


def test_missing_annotations():
    def f(a: int, *args, b, **kw) -> None:
        pass

    def g(self, x: str):
        pass

    assert _missing_annotations(f) == ['args', 'b', 'kw']
    assert _missing_annotations(g) == ['return']


@pytest.mark.parametrize(
    'module_name', ['degu', 'degu.base', 'degu.server', 'degu.client', 'degu.rgi']
)
def test_import_degu_needs_no_typing(module_name):
    # degu/__init__.py keeps its hints as strings (server.py and client.py use
    # `from __future__ import annotations`) and the typing imports under
    # `if TYPE_CHECKING:`, so importing them must not load typing (about 20 ms,
    # several times the rest of `import degu`).  -S: no site, which may load it.
    code = f'import sys\nimport {module_name}\nprint("typing" in sys.modules)\n'
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, '-S', '-c', code], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'False\n'


def test_rgi_types_made_on_first_use():
    # degu.rgi.App and its kin come from degu._types, which imports typing:
    # only a program that asks for one pays for it.
    code = (
        'import sys\n'
        'import degu.rgi\n'
        'print("typing" in sys.modules)\n'
        'from degu.rgi import App, ConnectApp, ResponseBody, ResponseTuple\n'
        'print("typing" in sys.modules, App.__name__, ConnectApp.__mro__[1].__name__)\n'
        'print(ResponseTuple.__origin__.__name__, len(ResponseTuple.__args__))\n'
        'import typing\n'
        'print(ResponseBody == typing.get_args(ResponseTuple)[3])\n'
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(
        [sys.executable, '-S', '-c', code], capture_output=True, text=True, timeout=30, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'False\nTrue App App\ntuple 4\nTrue\n'
    import degu.rgi

    with pytest.raises(AttributeError) as info:
        degu.rgi.Nothing
    assert str(info.value) == "module 'degu.rgi' has no attribute 'Nothing'"


def test_response_types_at_run_time():
    # Response[X] is what type checkers see; at run time it is the same
    # namedtuple, and a ClientResponse is still one without an instance dict.
    from degu.base import Response, ResponseType
    from degu.client import ClientResponse

    alias = Response[bytes]
    assert (alias.__origin__, alias.__args__) == (Response, (bytes,))
    assert ResponseType is Response
    assert Response._fields == ('status', 'reason', 'headers', 'body')
    assert ClientResponse.__bases__ == (Response,)
    response = ClientResponse(200, 'OK', {}, None)
    assert not hasattr(response, '__dict__')
    assert type(response).__slots__ == ()
    assert Response(200, 'OK', {}, b'hi') == (200, 'OK', {}, b'hi')
    assert repr(response) == "Response(status=200, reason='OK', headers={}, body=None)"


def test_mypy_strict_on_user_programs(tmp_path):
    # The programs of doc/examples/, written as a user writes them, pass
    # `mypy --strict` when run from a folder outside the checkout: mypy finds
    # degu as an installed package (the editable install is a plain .pth
    # entry, see pyproject.toml) and checks them against degu's hints.
    pytest.importorskip('mypy')
    programs = tmp_path / 'programs'
    programs.mkdir()
    names = copy_examples(programs)
    check_installed(programs)
    result = subprocess.run(
        [
            sys.executable, '-m', 'mypy', '--strict',
            '--cache-dir', str(tmp_path / 'mypy_cache'),
            *names,
        ],
        capture_output=True, text=True, timeout=300, cwd=programs, env=user_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f'Success: no issues found in {len(names)} source files\n'


BAD_PROGRAM = """\
from degu.base import API, Request, Session
from degu.client import Client
from degu.server import Server


def app(session: Session, request: Request, api: API) -> tuple[int, str, dict[str, str], str]:
    return (200, 'OK', {}, request.method)


Server(('127.0.0.1', 0), app)
response = Client(('127.0.0.1', 80)).connect().get('/')
status: str = response.status
response.body.read()
"""


def test_mypy_strict_catches_mistakes(tmp_path):
    # The hints are not Any in disguise: a str body is not an RGI response
    # body, a status is an int, and a response body may be None (HEAD, 204,
    # 304).  Errors only: reveal_type() spells types differently across mypy
    # versions (1.8 passes this test too).
    pytest.importorskip('mypy')
    check_installed(tmp_path)
    (tmp_path / 'bad.py').write_text(BAD_PROGRAM)
    result = subprocess.run(
        [
            sys.executable, '-m', 'mypy', '--strict', '--no-error-summary',
            '--cache-dir', str(tmp_path / 'mypy_cache'), 'bad.py',
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=user_env(),
    )  # fmt: skip
    found = []
    for line in result.stdout.splitlines():
        (_, lineno, kind, message) = line.split(':', 3)
        if kind == ' error':
            found.append((int(lineno), message.strip().split('  [')[0]))
    assert found == [
        (
            10,
            'Argument 2 to "Server" has incompatible type "Callable[[Session, Request, API], '
            'tuple[int, str, dict[str, str], str]]"; expected "App"',
        ),
        (
            12,
            'Incompatible types in assignment (expression has type "int", variable has type '
            '"str")',
        ),
        (13, 'Item "None" of "Body | ChunkedBody | None" has no attribute "read"'),
    ], result.stdout


# The flags of --strict that degu's own modules pass today.  Still missing:
# --disallow-untyped-defs and --disallow-untyped-calls (private helpers are
# unannotated), --check-untyped-defs, --warn-return-any, --disallow-any-generics.
STRICT_FLAGS_PASSED = (
    '--strict-equality',
    '--extra-checks',
    '--no-implicit-reexport',
    '--warn-redundant-casts',
    '--warn-unused-ignores',
    '--disallow-incomplete-defs',
    '--disallow-untyped-decorators',
)


def test_mypy(tmp_path):
    pytest.importorskip('mypy')
    files = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        files.append(os.path.relpath(module.__file__, ROOT))
    result = subprocess.run(
        [
            sys.executable, '-m', 'mypy',
            '--ignore-missing-imports', '--follow-imports=silent', *STRICT_FLAGS_PASSED,
            '--cache-dir', str(tmp_path / 'mypy_cache'),
            *files,
        ],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
