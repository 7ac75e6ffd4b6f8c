"""A throw-away PKI for tests, built by running the ``openssl`` command line.

Nothing here is meant for production keys: the point is to give unit tests
and doctests real certificates (a server CA, a server certificate, a client CA
and a client certificate) in a fraction of a second.  ``degu.misc.TempPKI``
wraps ``PKI`` in a temporary directory.

Every function runs ``openssl`` through ``subprocess.check_output`` (with a
timeout) and returns PEM ``bytes``; input data goes to openssl on stdin, input
files are given by absolute path.  An id is the base32 hash of a public key
(``hash_pubkey``), so a file name says which key it belongs to::

    <ssldir>/<id>.key    private key             PKI.create_key()
    <ssldir>/<id>.ca     self-signed CA cert     PKI.create_ca(id)
    <ssldir>/<id>.csr    certificate request     PKI.create_csr(id)
    <ssldir>/<id>.cert   cert signed by a CA     PKI.issue_cert(id, ca_id)
    <ssldir>/<id>.srl    serial file of a CA     (written by openssl)

Issued certificates carry v3 extensions (not a CA, both TLS purposes, key
identifiers) so that strict X.509 verification, which newer Pythons turn on
in ``ssl.create_default_context()``, accepts them too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess

from ._common import _check_abspath
from ._parse import _TYPE_ERROR

__all__ = (
    'DAYS',
    'OPENSSL_TIMEOUT',
    'create_key',
    'create_ca',
    'create_csr',
    'issue_cert',
    'get_pubkey',
    'get_csr_pubkey',
    'get_cert_pubkey',
    'hash_pubkey',
    'b32enc',
    'random_id',
    'make_subject',
    'safe_write',
    'PKI',
)

DAYS = 3650  # validity of every CA and certificate, in days (10 years)
OPENSSL_TIMEOUT = 60  # seconds one openssl run may take (a 4096-bit key on a slow machine)
KEY_BITS = (1024, 2048, 3072, 4096)  # RSA key sizes create_key() accepts

# A self-contained openssl config, so the result does not depend on the
# system's openssl.cnf.  The v3_ca section is what a CA needs under strict
# verification: CA:TRUE, keyCertSign and the key identifiers.
_REQ_CONFIG = b"""\
[req]
distinguished_name = req_dn
x509_extensions = v3_ca
prompt = no
[req_dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

# Extensions for an issued (end-entity) certificate.  keyEncipherment and
# both extended key usages let one certificate serve as a TLS server or a
# TLS client; the key identifiers are what strict verification asks for.
_CERT_EXTENSIONS = b"""\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    """Run ``openssl *args`` and return its stdout; raise on failure."""
    cmd = ('openssl',) + args
    try:
        return subprocess.run(
            cmd,
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=OPENSSL_TIMEOUT,
            check=True,
        ).stdout
    except subprocess.CalledProcessError as e:
        # Keep openssl's own explanation: it is the useful part of the error.
        msg = e.stderr.decode('utf-8', 'replace').strip()[:500]
        raise RuntimeError(f'{" ".join(cmd[:2])} failed (exit {e.returncode}): {msg}') from None


def create_key(bits: int = 2048) -> bytes:
    """A new RSA private key in PEM (``openssl genrsa``).

    *bits* is one of 1024, 2048, 3072 or 4096.  1024-bit keys are fast but
    refused by OpenSSL's default security level for TLS; use them only where
    a test needs *a* key, not a working handshake.
    """
    if type(bits) is not int:
        raise TypeError(_TYPE_ERROR.format('bits', int, type(bits), bits))
    if bits not in KEY_BITS:
        raise ValueError(f'bits must be 1024, 2048, 3072 or 4096; got {bits!r}')
    return _openssl('genrsa', str(bits))


def create_ca(key_file: str, subject: str) -> bytes:
    """A self-signed CA certificate for the key in *key_file* (``openssl req -x509``)."""
    _check_abspath('key_file', key_file)
    return _openssl(
        'req', '-new', '-x509', '-sha384', '-days', str(DAYS),
        '-key', key_file, '-subj', subject, '-config', '/dev/stdin',
        stdin=_REQ_CONFIG,
    )  # fmt: skip


def create_csr(key_file: str, subject: str) -> bytes:
    """A certificate signing request for the key in *key_file* (``openssl req``)."""
    _check_abspath('key_file', key_file)
    return _openssl(
        'req', '-new', '-sha384', '-key', key_file, '-subj', subject,
        '-config', '/dev/stdin', stdin=_REQ_CONFIG,
    )  # fmt: skip


def issue_cert(csr_file: str, ca_file: str, key_file: str, srl_file: str) -> bytes:
    """Sign the request in *csr_file* with the CA in *ca_file*/*key_file*.

    *srl_file* is the CA's serial-number file, created on first use.
    """
    for name, value in (
        ('csr_file', csr_file),
        ('ca_file', ca_file),
        ('key_file', key_file),
        ('srl_file', srl_file),
    ):
        _check_abspath(name, value)
    return _openssl(
        'x509', '-req', '-sha384', '-days', str(DAYS),
        '-CAcreateserial', '-in', csr_file, '-CA', ca_file, '-CAkey', key_file,
        '-CAserial', srl_file, '-extfile', '/dev/stdin',
        stdin=_CERT_EXTENSIONS,
    )  # fmt: skip


def get_pubkey(key_data: bytes) -> bytes:
    """The PEM public key of the PEM private key *key_data*."""
    return _openssl('pkey', '-pubout', stdin=key_data)


def get_csr_pubkey(csr_data: bytes) -> bytes:
    """The PEM public key in the PEM certificate request *csr_data*."""
    return _openssl('req', '-pubkey', '-noout', stdin=csr_data)


def get_cert_pubkey(cert_data: bytes) -> bytes:
    """The PEM public key in the PEM certificate *cert_data*."""
    return _openssl('x509', '-pubkey', '-noout', stdin=cert_data)


def b32enc(data: bytes) -> str:
    """RFC 3548 base32 of *data*, whose length must be a multiple of 5 in 5..60.

    A multiple of 5 bytes means no ``=`` padding in the result.

    >>> b32enc(b'\\x00' * 5)
    'AAAAAAAA'
    """
    if type(data) is not bytes:
        raise TypeError(_TYPE_ERROR.format('data', bytes, type(data), data))
    if not (5 <= len(data) <= 60):
        raise ValueError(f'need 5 <= len(data) <= 60; got {len(data)}')
    if len(data) % 5 != 0:
        raise ValueError(f'len(data) must be a multiple of 5; got {len(data)}')
    return base64.b32encode(data).decode('ascii')


def hash_pubkey(pubkey_data: bytes) -> str:
    """The id of a public key: base32 of the first 30 bytes of its SHA-512 (48 chars).

    >>> len(hash_pubkey(b'any bytes'))
    48
    """
    return b32enc(hashlib.sha512(pubkey_data).digest()[:30])


def random_id(numbytes: int = 15) -> str:
    """A random base32 id, ``numbytes * 8 // 5`` characters long.

    >>> len(random_id()), len(random_id(30))
    (24, 48)
    """
    return b32enc(os.urandom(numbytes))


def make_subject(cn: str) -> str:
    """The openssl ``-subj`` value for a common name.

    >>> make_subject('foo')
    '/CN=foo'
    """
    return '/CN=' + cn


def safe_write(filename: str, data: bytes) -> None:
    """Create *filename* (it must not exist) with mode 0400 and write *data*."""
    fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    with open(fd, 'wb') as fp:
        fp.write(data)


class PKI:
    """Keys and certificates kept in one directory, named by key id.

    >>> PKI('/tmp/ssl').path('ABCD', 'key')
    '/tmp/ssl/ABCD.key'
    """

    def __init__(self, ssldir: str) -> None:
        self.ssldir = _check_abspath('ssldir', ssldir)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.ssldir!r})'

    def path(self, _id: str, ext: str) -> str:
        """The file ``<ssldir>/<_id>.<ext>``."""
        return os.path.join(self.ssldir, f'{_id}.{ext}')

    def read(self, _id: str, ext: str) -> bytes:
        """The contents of ``path(_id, ext)``."""
        with open(self.path(_id, ext), 'rb') as fp:
            return fp.read()

    def create_key(self, bits: int = 4096) -> str:
        """Create a private key, write ``<id>.key`` and return the id."""
        key_data = create_key(bits)
        _id = hash_pubkey(get_pubkey(key_data))
        safe_write(self.path(_id, 'key'), key_data)
        return _id

    def create_ca(self, _id: str) -> str:
        """Write a self-signed CA cert ``<id>.ca`` (subject ``/CN=<id>``); return its path."""
        ca_file = self.path(_id, 'ca')
        safe_write(ca_file, create_ca(self.path(_id, 'key'), make_subject(_id)))
        return ca_file

    def create_csr(self, _id: str) -> str:
        """Write a request ``<id>.csr`` (subject ``/CN=<id>``); return its path."""
        csr_file = self.path(_id, 'csr')
        safe_write(csr_file, create_csr(self.path(_id, 'key'), make_subject(_id)))
        return csr_file

    def issue_cert(self, _id: str, ca_id: str) -> str:
        """Sign ``<id>.csr`` with the CA *ca_id*, write ``<id>.cert``; return its path."""
        cert_file = self.path(_id, 'cert')
        data = issue_cert(
            self.path(_id, 'csr'),
            self.path(ca_id, 'ca'),
            self.path(ca_id, 'key'),
            self.path(ca_id, 'srl'),
        )
        safe_write(cert_file, data)
        return cert_file

    def get_server_sslconfig(self, server_id: str, client_ca_id: str) -> dict[str, object]:
        """Server config that requires client certs signed by *client_ca_id*."""
        return {
            'cert_file': self.path(server_id, 'cert'),
            'key_file': self.path(server_id, 'key'),
            'ca_file': self.path(client_ca_id, 'ca'),
        }

    def get_anonymous_server_sslconfig(self, server_id: str) -> dict[str, object]:
        """Server config that lets clients connect without a certificate."""
        return {
            'cert_file': self.path(server_id, 'cert'),
            'key_file': self.path(server_id, 'key'),
            'allow_unauthenticated_clients': True,
        }

    def get_client_sslconfig(self, server_ca_id: str, client_id: str) -> dict[str, object]:
        """Client config that trusts *server_ca_id* and presents *client_id*'s cert."""
        return {
            'ca_file': self.path(server_ca_id, 'ca'),
            'check_hostname': False,
            'cert_file': self.path(client_id, 'cert'),
            'key_file': self.path(client_id, 'key'),
        }

    def get_anonymous_client_sslconfig(self, server_ca_id: str) -> dict[str, object]:
        """Client config that trusts *server_ca_id* and presents no certificate."""
        return {
            'ca_file': self.path(server_ca_id, 'ca'),
            'check_hostname': False,
        }
