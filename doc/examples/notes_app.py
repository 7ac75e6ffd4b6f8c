"""A small notes service: an RGI app built on degu.applib.Router.

    GET /               a greeting, as plain text
    PUT /notes/NAME     store the JSON body under NAME
    GET /notes/NAME     the JSON stored under NAME (404 when there is none)

Run it with ``python3 notes_app.py [PORT]``; Ctrl-C stops it.  It answers
programs on this machine only: it has no authentication.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading

from degu.applib import AllowedMethods, Router
from degu.base import API, Request, Session
from degu.rgi import App, ConnectApp, ResponseTuple
from degu.server import Server

MAX_NOTE = 64 * 1024  # bytes of JSON in one note


def reply(status: int, reason: str, obj: object) -> ResponseTuple:
    body = json.dumps(obj).encode()
    return (status, reason, {'content-type': 'application/json'}, body)


@AllowedMethods('GET', 'HEAD')
def hello(session: Session, request: Request, api: API) -> ResponseTuple:
    body = b'hello from the notes service\n'
    if request.method == 'HEAD':
        return (200, 'OK', {'content-length': len(body)}, None)
    return (200, 'OK', {'content-type': 'text/plain'}, body)


class Notes:
    """The notes, in memory, shared by all connections (hence the lock)."""

    def __init__(self) -> None:
        self._notes: dict[str, object] = {}
        self._lock = threading.Lock()

    def __call__(self, session: Session, request: Request, api: API) -> ResponseTuple:
        if len(request.path) != 1:
            return reply(404, 'Not Found', {'error': 'no such path'})
        name = request.path[0]
        if request.method == 'PUT':
            return self.put(name, request)
        if request.method == 'GET':
            with self._lock:
                if name not in self._notes:
                    return reply(404, 'Not Found', {'error': f'no note {name}'})
                return reply(200, 'OK', self._notes[name])
        return (405, 'Method Not Allowed', {'allow': 'GET, PUT'}, None)

    def put(self, name: str, request: Request) -> ResponseTuple:
        body = request.body
        if body is None:
            return reply(411, 'Length Required', {'error': 'need a JSON body'})
        if body.content_length is not None and body.content_length > MAX_NOTE:
            return reply(413, 'Content Too Large', {'error': f'at most {MAX_NOTE} bytes'})
        try:
            note = json.loads(body.read())
        except ValueError:  # bad JSON, or bad UTF-8
            return reply(400, 'Bad Request', {'error': 'need a JSON body'})
        with self._lock:
            self._notes[name] = note
        return (204, 'No Content', {}, None)


class LocalOnly:
    """Middleware: refuse connections from other machines, then call *app*."""

    def __init__(self, app: App) -> None:
        self.app = app

    def on_connect(self, session: Session, sock: socket.socket) -> bool:
        client = session.client  # (host, port), or an AF_UNIX address
        return not isinstance(client, tuple) or client[0] in ('127.0.0.1', '::1')

    def __call__(self, session: Session, request: Request, api: API) -> ResponseTuple:
        return self.app(session, request, api)


def build_app() -> ConnectApp:
    return LocalOnly(Router({None: hello, 'notes': Notes()}))


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = Server(('127.0.0.1', port), build_app(), max_body=MAX_NOTE)

    def stop(signum: int, frame: object) -> None:
        # shutdown() lets requests in flight finish; it must run in another
        # thread than serve_forever().
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGINT, stop)  # Ctrl-C
    signal.signal(signal.SIGTERM, stop)  # a service manager
    print(f'serving on http://127.0.0.1:{server.address[1]}/', flush=True)
    server.serve_forever()


if __name__ == '__main__':
    main()
