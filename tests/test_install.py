"""Installing degu where the C core cannot be built.

The compiled core is optional (setup.py: ``Extension(..., optional=True)``):
``pip install`` on a machine without a working C compiler must succeed and
give a degu that runs on its pure-Python core and says so.  These tests
install a copy of the source tree with ``CC=false`` (a compiler that always
fails) into a folder of their own, then import that degu in a child.
"""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300  # seconds: a pip install on a busy 2-core VM


def _copy_source(dest):
    # What a source distribution holds; never a built _cparse or a cache.
    for name in ('pyproject.toml', 'setup.py', 'README.rst', 'LICENSE', 'LICENSE.GPL-3'):
        shutil.copy(os.path.join(ROOT, name), dest)
    shutil.copytree(
        os.path.join(ROOT, 'degu'),
        os.path.join(dest, 'degu'),
        ignore=shutil.ignore_patterns('*.so', '*.pyd', '__pycache__'),
    )


def _child_env(site):
    env = {k: v for (k, v) in os.environ.items() if not k.startswith('DEGU_')}
    env['PYTHONPATH'] = site
    return env


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """A degu installed with a compiler that always fails: its site folder."""
    pytest.importorskip('setuptools')  # the build backend (pyproject.toml)
    base = tmp_path_factory.mktemp('install')
    src = base / 'src'
    src.mkdir()
    _copy_source(src)
    site = str(base / 'site')
    env = {**os.environ, 'CC': 'false', 'LDSHARED': 'false'}
    done = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-index',
         '--no-build-isolation', '--target', site, str(src)],
        env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def test_install_without_a_compiler_succeeds(installed):
    package = os.path.join(installed, 'degu')
    assert os.path.isfile(os.path.join(package, 'server.py'))
    assert not [name for name in os.listdir(package) if name.startswith('_cparse')]


def test_it_runs_on_the_pure_python_core(installed, tmp_path):
    code = (
        'import degu, degu.base, degu._parse\n'
        'from degu.misc import TempServer\n'
        'from degu.client import Client\n'
        'assert degu.__file__.startswith(%r), degu.__file__\n'
        'print(degu.base.CORE, degu._parse.parse_headers.__module__)\n'
        'def app(session, request, api):\n'
        '    return (200, "OK", {}, request.uri.encode())\n'
        'with TempServer(("127.0.0.1", 0), app) as server:\n'
        '    print(Client(server.address).connect().get("/x?y", {}).body.read())\n'
    ) % installed
    done = subprocess.run([sys.executable, '-c', code], env=_child_env(installed),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ['python degu._parse', "b'/x?y'"]


def test_version_names_the_pure_core(installed, tmp_path):
    done = subprocess.run([sys.executable, '-m', 'degu', '--version'],
                          env=_child_env(installed), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'python core' in done.stdout, done.stdout
