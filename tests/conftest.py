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
