"""Fixtures of the interop suite: a folder of files to serve, a throw-away PKI."""

import os

import pytest
from interop_helpers import BIG_SIZE, HELLO

from degu.misc import TempPKI

OLD_MTIME = 1_600_000_000  # September 2020


@pytest.fixture(scope='module')
def files_dir(tmp_path_factory):
    """A folder: ``hello.txt``, ``digits.txt`` (0-9 x 10), ``big.bin`` (5 MiB), ``sub/``."""
    root = tmp_path_factory.mktemp('files')
    (root / 'hello.txt').write_bytes(HELLO)
    (root / 'digits.txt').write_bytes(b'0123456789' * 10)
    (root / 'big.bin').write_bytes(os.urandom(BIG_SIZE))
    (root / 'sub').mkdir()
    (root / 'sub' / 'index.html').write_bytes(b'<p>sub</p>\n')
    # Old enough for last-modified to be a strong validator (RFC 9110 section 8.8.2.2).
    for path in root.rglob('*'):
        os.utime(path, (OLD_MTIME, OLD_MTIME))
    return str(root)


@pytest.fixture(scope='module')
def pki():
    """A server CA and certificate (no client PKI: curl presents no certificate)."""
    with TempPKI(client_pki=False) as pki:
        yield pki
