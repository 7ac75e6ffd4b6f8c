"""The shared HTTP engine of degu: what the server and the client both use.

* Limits, each a named constant with its unit (``MAX_PREAMBLE_LEN``, ...).
* Errors: ``ConnectionClosed`` and its family, ``ParseError``.
* Pure parsers and renderers (``parse_*``, ``render_*``): bytes in, values out.
* Body objects: ``Body``, ``ChunkedBody``, ``BodyIter``, ``ChunkedBodyIter``,
  and the values ``Range`` and ``ContentRange``.
* RGI values: ``Request``, ``Session``, ``Response``, ``API`` and ``api``.
* Framing: how a body is delimited and whether a connection persists,
  decided in one place for both sides (``request_framing()``,
  ``response_framing()``, ``response_output()``...).
* ``Transport``: buffered bytes over one socket, no HTTP; the message
  readers and writers over it (``read_request()``, ``write_message()``...),
  and ``SocketWrapper``, the two in one object.

The implementation lives in the private modules ``degu._parse``,
``degu._body``, ``degu._framing``, ``degu._transport`` and ``degu._io``;
this module is the one to import.  The classes keep the ``__module__`` that
defines them, so tracebacks and ``inspect.getsource()`` point at the right
file.
See doc/degu.base.rst.
"""

from ._body import *  # noqa: F403
from ._body import __all__ as _body_all
from ._framing import *  # noqa: F403
from ._framing import __all__ as _framing_all
from ._io import *  # noqa: F403
from ._io import __all__ as _io_all
from ._parse import *  # noqa: F403
from ._parse import __all__ as _parse_all
from ._transport import *  # noqa: F403
from ._transport import __all__ as _transport_all

__all__ = _parse_all + _body_all + _framing_all + _transport_all + _io_all
