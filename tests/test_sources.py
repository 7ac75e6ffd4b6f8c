"""Every public class can be traced to its source.

Classes keep the ``__module__`` of the module that defines them (degu.base
re-exports the engine's classes, it does not rename them), so
``inspect.getsource()`` works and tracebacks point at the file the code is
in.  The file is found here by reading the package's sources, not by
trusting ``__module__``.
"""

import importlib
import inspect
import os
import re

import pytest

import degu

PACKAGE = os.path.dirname(os.path.abspath(degu.__file__))
MODULES = (
    'degu.base',
    'degu.server',
    'degu.client',
    'degu.applib',
    'degu.misc',
    'degu.rgi',
    'degu.wsgi',
    'degu.util',
)


def _public_classes():
    seen = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                seen.setdefault(obj, f'{module_name}.{name}')
    return sorted(seen.items(), key=lambda item: item[1])


def _defining_files(cls):
    """The files of the package with a top-level definition of *cls*'s name."""
    name = re.escape(cls.__name__)
    # A class statement, or a namedtuple() call (API, Response), maybe indented:
    # degu._body defines those two under `if TYPE_CHECKING: ... else:`.
    pattern = re.compile(rf'^ *(?:class {name}\b|{name} = namedtuple\()', re.MULTILINE)
    found = []
    for filename in sorted(os.listdir(PACKAGE)):
        if filename.endswith('.py'):
            path = os.path.join(PACKAGE, filename)
            with open(path, encoding='utf-8') as fp:
                if pattern.search(fp.read()):
                    found.append(path)
    return found


CLASSES = _public_classes()


def test_classes_found():
    labels = {label for (_, label) in CLASSES}
    for label in ('degu.base.ParseError', 'degu.base.Body', 'degu.base.SocketWrapper',
                  'degu.base.Response', 'degu.server.Server', 'degu.client.Connection',
                  'degu.wsgi.WSGIInput', 'degu.rgi.Validator'):
        assert label in labels


@pytest.mark.parametrize('cls, label', CLASSES, ids=[label for (_, label) in CLASSES])
def test_public_class_source(cls, label):
    files = _defining_files(cls)
    assert len(files) == 1, (label, files)
    assert inspect.getsourcefile(cls) == files[0], label
    assert cls.__module__ == 'degu.' + os.path.basename(files[0])[:-3], label
    if issubclass(cls, tuple) and hasattr(cls, '_fields'):
        return  # a namedtuple() class has no class statement for getsource() to find
    (lines, lineno) = inspect.getsourcelines(cls)
    assert lines[0].startswith(f'class {cls.__name__}'), label
    assert inspect.getsource(cls) == ''.join(lines)


def test_engine_values_pickle_by_their_own_module():
    import pickle

    from degu import base

    for value in (
        base.Range(0, 5),
        base.ContentRange(0, 5, 10),
        base.ConnectionClosed('gone', [('GET', '/')]),
        base.EmptyPreambleError('request preamble is empty'),
        base.Response(200, 'OK', {}, None),
    ):
        data = pickle.dumps(value)
        assert type(value).__module__.encode() in data  # degu._parse, degu._body
        copy = pickle.loads(data)
        assert type(copy) is type(value) and repr(copy) == repr(value)
    assert pickle.loads(pickle.dumps(base.ConnectionClosed('x', [('GET', '/')]))).unanswered == (
        ('GET', '/'),
    )
