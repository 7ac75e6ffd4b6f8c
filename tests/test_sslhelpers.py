"""Tests for degu.sslhelpers: the openssl-backed throw-away PKI (doc/degu.misc.rst)."""

import base64
import hashlib
import os
import stat
import subprocess

import pytest

from degu import sslhelpers
from degu.sslhelpers import (
    DAYS,
    PKI,
    b32enc,
    create_ca,
    create_csr,
    create_key,
    get_cert_pubkey,
    get_csr_pubkey,
    get_pubkey,
    hash_pubkey,
    issue_cert,
    make_subject,
    random_id,
    safe_write,
)

# Tests here only need *a* key, never a TLS handshake: 1024 bits is enough
# and keeps the file fast.
BITS = 1024


@pytest.fixture(scope='module')
def small_pki(tmp_path_factory):
    """A CA and a certificate issued by it, with 1024-bit keys."""
    pki = PKI(str(tmp_path_factory.mktemp('pki')))
    ca_id = pki.create_key(BITS)
    pki.create_ca(ca_id)
    cert_id = pki.create_key(BITS)
    pki.create_csr(cert_id)
    pki.issue_cert(cert_id, ca_id)
    return (pki, ca_id, cert_id)


def openssl(*args):
    return subprocess.run(('openssl',) + args, capture_output=True, timeout=30, text=True)


def test_constants():
    assert DAYS == 3650
    assert sslhelpers.KEY_BITS == (1024, 2048, 3072, 4096)
    assert set(sslhelpers.__all__) <= set(dir(sslhelpers))


@pytest.mark.parametrize(
    ('data', 'text'),
    [
        (b'\x00' * 5, 'AAAAAAAA'),
        (b'\xff' * 5, '77777777'),
        (b'hello', 'NBSWY3DP'),
        (b'\x00' * 60, 'A' * 96),
    ],
)
def test_b32enc(data, text):
    assert b32enc(data) == text
    assert base64.b32decode(text) == data


@pytest.mark.parametrize(
    ('data', 'error', 'message'),
    [
        ('hello', TypeError, "data: need a <class 'bytes'>; got a <class 'str'>: 'hello'"),
        (bytearray(5), TypeError, "data: need a <class 'bytes'>; got a <class 'bytearray'>: "
         "bytearray(b'\\x00\\x00\\x00\\x00\\x00')"),
        (b'', ValueError, 'need 5 <= len(data) <= 60; got 0'),
        (b'abcd', ValueError, 'need 5 <= len(data) <= 60; got 4'),
        (b'x' * 65, ValueError, 'need 5 <= len(data) <= 60; got 65'),
        (b'x' * 6, ValueError, 'len(data) must be a multiple of 5; got 6'),
        (b'x' * 59, ValueError, 'len(data) must be a multiple of 5; got 59'),
    ],
)  # fmt: skip
def test_b32enc_errors(data, error, message):
    with pytest.raises(error) as e:
        b32enc(data)
    assert str(e.value) == message


def test_hash_pubkey():
    data = b'-----BEGIN PUBLIC KEY-----\n...'
    expected = base64.b32encode(hashlib.sha512(data).digest()[:30]).decode()
    assert hash_pubkey(data) == expected
    assert len(expected) == 48
    assert hash_pubkey(data + b'x') != expected


def test_random_id():
    ids = {random_id() for _ in range(100)}
    assert len(ids) == 100
    for _id in ids:
        assert len(_id) == 24
        assert len(base64.b32decode(_id)) == 15
    assert len(random_id(30)) == 48
    assert len(random_id(5)) == 8
    with pytest.raises(ValueError):
        random_id(16)


def test_make_subject():
    assert make_subject('foo') == '/CN=foo'
    assert make_subject(random_id()).startswith('/CN=')


def test_safe_write(tmp_path):
    filename = str(tmp_path / 'a.key')
    assert safe_write(filename, b'secret') is None
    with open(filename, 'rb') as fp:
        assert fp.read() == b'secret'
    assert stat.S_IMODE(os.stat(filename).st_mode) == 0o400
    # Exclusive create: never overwrite a key.
    with pytest.raises(FileExistsError):
        safe_write(filename, b'other')
    with open(filename, 'rb') as fp:
        assert fp.read() == b'secret'


@pytest.mark.parametrize(
    ('bits', 'error', 'message'),
    [
        ('2048', TypeError, "bits: need a <class 'int'>; got a <class 'str'>: '2048'"),
        (2048.0, TypeError, "bits: need a <class 'int'>; got a <class 'float'>: 2048.0"),
        (True, TypeError, "bits: need a <class 'int'>; got a <class 'bool'>: True"),
        (512, ValueError, 'bits must be 1024, 2048, 3072 or 4096; got 512'),
        (2047, ValueError, 'bits must be 1024, 2048, 3072 or 4096; got 2047'),
        (8192, ValueError, 'bits must be 1024, 2048, 3072 or 4096; got 8192'),
    ],
)
def test_create_key_errors(bits, error, message):
    with pytest.raises(error) as e:
        create_key(bits)
    assert str(e.value) == message


def test_create_key_and_pubkeys():
    key = create_key(BITS)
    assert key.startswith(b'-----BEGIN PRIVATE KEY-----\n')
    assert key.endswith(b'-----END PRIVATE KEY-----\n')
    pub = get_pubkey(key)
    assert pub.startswith(b'-----BEGIN PUBLIC KEY-----\n')
    assert get_pubkey(key) == pub  # deterministic
    assert get_pubkey(create_key(BITS)) != pub  # and keys are fresh


@pytest.mark.parametrize('func', [create_ca, create_csr])
@pytest.mark.parametrize(
    ('key_file', 'error', 'message'),
    [
        (b'/tmp/a.key', TypeError,
         "key_file: need a <class 'str'>; got a <class 'bytes'>: b'/tmp/a.key'"),
        ('a.key', ValueError, "key_file: not absolute, normalized path: 'a.key'"),
        ('/tmp/../tmp/a.key', ValueError,
         "key_file: not absolute, normalized path: '/tmp/../tmp/a.key'"),
    ],
)  # fmt: skip
def test_path_errors(func, key_file, error, message):
    with pytest.raises(error) as e:
        func(key_file, '/CN=foo')
    assert str(e.value) == message


def test_issue_cert_path_errors(tmp_path):
    good = str(tmp_path / 'x')
    for index, name in enumerate(('csr_file', 'ca_file', 'key_file', 'srl_file')):
        args = [good] * 4
        args[index] = 'relative'
        with pytest.raises(ValueError) as e:
            issue_cert(*args)
        assert str(e.value) == f"{name}: not absolute, normalized path: 'relative'"


def test_openssl_failure_is_reported(tmp_path):
    missing = str(tmp_path / 'missing.key')
    with pytest.raises(RuntimeError) as e:
        create_ca(missing, '/CN=foo')
    message = str(e.value)
    assert message.startswith('openssl req failed (exit 1): ')
    assert 'missing.key' in message  # openssl's own explanation is kept


def test_pki_files(small_pki):
    (pki, ca_id, cert_id) = small_pki
    names = sorted(os.listdir(pki.ssldir))
    expected = sorted(
        [f'{ca_id}.key', f'{ca_id}.ca', f'{ca_id}.srl', f'{cert_id}.key', f'{cert_id}.csr',
         f'{cert_id}.cert']
    )  # fmt: skip
    assert names == expected
    for name in names:
        if not name.endswith('.srl'):  # openssl writes the serial file itself
            mode = os.stat(os.path.join(pki.ssldir, name)).st_mode
            assert stat.S_IMODE(mode) == 0o400
    # An id is the hash of the public key, whichever file it is read from.
    for _id in (ca_id, cert_id):
        assert hash_pubkey(get_pubkey(pki.read(_id, 'key'))) == _id
    assert hash_pubkey(get_cert_pubkey(pki.read(ca_id, 'ca'))) == ca_id
    assert hash_pubkey(get_csr_pubkey(pki.read(cert_id, 'csr'))) == cert_id
    assert hash_pubkey(get_cert_pubkey(pki.read(cert_id, 'cert'))) == cert_id


def test_pki_certificates(small_pki):
    (pki, ca_id, cert_id) = small_pki
    ca_text = openssl('x509', '-noout', '-text', '-in', pki.path(ca_id, 'ca')).stdout
    assert f'Issuer: CN = {ca_id}' in ca_text
    assert f'Subject: CN = {ca_id}' in ca_text
    assert 'CA:TRUE' in ca_text
    assert 'Certificate Sign' in ca_text
    assert 'sha384WithRSAEncryption' in ca_text
    cert_text = openssl('x509', '-noout', '-text', '-in', pki.path(cert_id, 'cert')).stdout
    assert f'Issuer: CN = {ca_id}' in cert_text
    assert f'Subject: CN = {cert_id}' in cert_text
    assert 'CA:FALSE' in cert_text
    assert 'TLS Web Server Authentication, TLS Web Client Authentication' in cert_text
    cert_file = pki.path(cert_id, 'cert')
    days = openssl('x509', '-noout', '-checkend', str((DAYS - 1) * 86400), '-in', cert_file)
    assert days.returncode == 0  # still valid DAYS - 1 days from now
    # The chain verifies under strict X.509 rules, for both TLS purposes.
    for purpose in ('sslserver', 'sslclient'):
        ca_file = pki.path(ca_id, 'ca')
        result = openssl(
            'verify', '-x509_strict', '-purpose', purpose, '-CAfile', ca_file, cert_file
        )
        assert result.returncode == 0, result.stderr
    # ... and not against a CA that did not sign it.
    result = openssl('verify', '-CAfile', pki.path(cert_id, 'cert'), pki.path(cert_id, 'cert'))
    assert result.returncode != 0


def test_pki_path_and_repr(tmp_path):
    pki = PKI(str(tmp_path))
    assert pki.ssldir == str(tmp_path)
    assert pki.path('ABC', 'key') == os.path.join(str(tmp_path), 'ABC.key')
    assert repr(pki) == f'PKI({str(tmp_path)!r})'
    with pytest.raises(ValueError) as e:
        PKI('relative/dir')
    assert str(e.value) == "ssldir: not absolute, normalized path: 'relative/dir'"


def test_pki_sslconfigs():
    pki = PKI('/ssl')
    assert pki.get_server_sslconfig('S', 'CC') == {
        'cert_file': '/ssl/S.cert',
        'key_file': '/ssl/S.key',
        'ca_file': '/ssl/CC.ca',
    }
    assert pki.get_anonymous_server_sslconfig('S') == {
        'cert_file': '/ssl/S.cert',
        'key_file': '/ssl/S.key',
        'allow_unauthenticated_clients': True,
    }
    assert pki.get_client_sslconfig('SC', 'C') == {
        'ca_file': '/ssl/SC.ca',
        'check_hostname': False,
        'cert_file': '/ssl/C.cert',
        'key_file': '/ssl/C.key',
    }
    assert pki.get_anonymous_client_sslconfig('SC') == {
        'ca_file': '/ssl/SC.ca',
        'check_hostname': False,
    }
    # A new dict every time: callers may change theirs.
    assert pki.get_server_sslconfig('S', 'CC') is not pki.get_server_sslconfig('S', 'CC')


def test_pki_refuses_to_overwrite(small_pki):
    (pki, ca_id, cert_id) = small_pki
    with pytest.raises(FileExistsError):
        pki.create_ca(ca_id)
    with pytest.raises(FileExistsError):
        pki.issue_cert(cert_id, ca_id)
