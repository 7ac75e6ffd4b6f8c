"""Shared pytest configuration: the slow marker and a leak check on server threads."""

import os
import threading
import time

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get('DEGU_SKIP_SLOW') == '1':
        skip = pytest.mark.skip(reason='DEGU_SKIP_SLOW=1')
        for item in items:
            if 'slow' in item.keywords:
                item.add_marker(skip)


def _server_threads():
    return [
        t for t in threading.enumerate()
        if t.name.startswith('degu connection') or t.name == 'test serve_forever'
    ]


@pytest.fixture(autouse=True)
def no_leaked_server_threads():
    """Fail a test that leaves degu connection threads running behind it."""
    before = set(_server_threads())
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [t for t in _server_threads() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert leaked == [], f'leaked server threads: {leaked}'


# --------------------------------------------------------------------------
# The two cores (doc/hacking.rst, 'The compiled core').  A test that takes
# the ``core`` fixture runs twice, against the pure-Python functions of
# degu._parse and against degu._cparse: every degu module and the test
# module itself then see that core's functions under their usual names.


def c_core():
    """``degu._cparse``, bound to its reference; ``None`` when it was not built."""
    from degu import _parse

    try:
        return _parse._load_c_core()
    except ImportError:
        return None


def _core_functions(name):
    from degu import _parse

    if name == 'python':
        return dict(_parse.PYTHON_CORE)
    module = c_core()
    if module is None:
        if os.environ.get('DEGU_REQUIRE_C') == '1':
            pytest.fail('DEGU_REQUIRE_C=1, but degu._cparse was not built')
        pytest.skip('degu._cparse was not built (the C core is optional)')
    return {name: getattr(module, name) for name in _parse.PYTHON_CORE}


@pytest.fixture(params=['python', 'c'])
def core(request, monkeypatch):
    """The core a test runs against: a namespace of its functions, with ``.name``."""
    import sys
    import types

    from degu import _io, _parse
    from degu._body import _NO_ORIGIN, Request

    chosen = _core_functions(request.param)
    names = {}  # id() of either core's function -> its name
    module = c_core()
    for name in _parse.PYTHON_CORE:
        names[id(_parse.PYTHON_CORE[name])] = name
        if module is not None:
            names[id(getattr(module, name))] = name
    # The message readers: the Python path, or the one that tries the C
    # scanners first (which the C run makes sure it has, under DEGU_PURE too).
    for (name, python, scanning) in (
        ('read_request', _io._read_request, _io._scan_request),
        ('read_response_head', _io._read_response_head, _io._scan_response_head),
    ):
        names[id(python)] = names[id(scanning)] = name
        chosen[name] = python if request.param == 'python' else scanning
    if request.param == 'c':
        module._bind_request(Request, _NO_ORIGIN)
        monkeypatch.setattr(_io, 'scan_request', module.scan_request)
        monkeypatch.setattr(_io, 'scan_response', module.scan_response)
    for (modname, mod) in list(sys.modules.items()):
        if modname == 'degu' or modname.startswith('degu.') or mod is request.module:
            for (attr, value) in list(vars(mod).items()):
                name = names.get(id(value))
                if name is not None and value is not chosen[name] and (
                    name in _parse.PYTHON_CORE or attr == name  # never _io._read_request
                ):
                    monkeypatch.setattr(mod, attr, chosen[name])
    return types.SimpleNamespace(name=request.param, **chosen)
