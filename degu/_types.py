"""Types for annotations: the RGI app protocols and the response aliases.

Public through ``degu.rgi`` (doc/rgi.rst, 'Type hints').  Unlike the rest
of degu this module imports ``typing`` when it runs, so nothing imports it
at run time but ``degu.rgi.__getattr__``, when a program asks for one of
these names: ``import degu``, ``degu.server`` or ``degu.client`` never
load it (doc/decisions.rst, 'Imports').  Type checkers read it through the
``if TYPE_CHECKING:`` imports of the other modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from ._body import API, Body, BodyIter, ChunkedBody, ChunkedBodyIter, Request, Session

if TYPE_CHECKING:
    import socket

__all__ = ('Address', 'App', 'ConnectApp', 'ResponseBody', 'ResponseTuple')

# A socket address: (host, port), an IPv6 4-tuple, an AF_UNIX path (str) or
# abstract name (bytes).
Address: TypeAlias = tuple[Any, ...] | str | bytes

# What an app may return as the body of its response (doc/rgi.rst).
ResponseBody: TypeAlias = Body | ChunkedBody | BodyIter | ChunkedBodyIter | bytes | None

# What an app returns: (status, reason, headers, body).  A degu.base.Response,
# and the ClientResponse a client returns, are such tuples too.
ResponseTuple: TypeAlias = tuple[int, str, dict[str, Any], ResponseBody]


class App(Protocol):
    """An RGI app: ``app(session, request, api) -> (status, reason, headers, body)``.

    Any callable with that signature: a function, or an object with
    ``__call__``, such as ``degu.applib.Router``.  The parameters are
    positional, so their names are yours.
    """

    def __call__(self, session: Session, request: Request, api: API, /) -> ResponseTuple: ...


class ConnectApp(App, Protocol):
    """An RGI app with ``on_connect(session, sock) -> bool``, called once per connection.

    Only ``True`` keeps the connection; *sock* is the accepted socket (an
    ``ssl.SSLSocket`` under an ``SSLServer``).
    """

    def on_connect(self, session: Session, sock: socket.socket, /) -> bool: ...
