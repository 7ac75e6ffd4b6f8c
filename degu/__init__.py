"""degu: an embeddable HTTP/1.1 server and client library.

This module holds only the version and the address constants; it imports no
other part of the package, so ``import degu`` stays cheap.  Import what you
need explicitly: ``degu.server``, ``degu.client``, ``degu.base``, ...

>>> import degu
>>> degu.IPv6_LOOPBACK
('::1', 0, 0, 0)
>>> degu.ADDRESS_CONSTANTS[2]
('127.0.0.1', 0)
"""

__version__ = '0.1.0'

__all__ = (
    'IPv6_LOOPBACK',
    'IPv6_ANY',
    'IPv4_LOOPBACK',
    'IPv4_ANY',
    'ADDRESS_CONSTANTS',
)

IPv6_LOOPBACK = ('::1', 0, 0, 0)
IPv6_ANY = ('::', 0, 0, 0)
IPv4_LOOPBACK = ('127.0.0.1', 0)
IPv4_ANY = ('0.0.0.0', 0)
ADDRESS_CONSTANTS = (IPv6_LOOPBACK, IPv6_ANY, IPv4_LOOPBACK, IPv4_ANY)
