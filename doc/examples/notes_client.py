"""Store a note with the notes service and read it back.

Run ``python3 notes_app.py``, then ``python3 notes_client.py http://127.0.0.1:8000``.
"""

from __future__ import annotations

import sys
from typing import Any

from degu.client import Client, Connection, HTTPError


def greeting(conn: Connection) -> str:
    response = conn.get('/').raise_for_status()
    if response.body is None:  # only HEAD, 204 and 304 responses have no body
        raise ValueError(f'no greeting: {response.status} {response.reason}')
    return response.body.read().decode()


def put_note(conn: Connection, name: str, note: dict[str, Any]) -> None:
    conn.put(f'/notes/{name}', json=note).raise_for_status()


def get_note(conn: Connection, name: str) -> dict[str, Any] | None:
    """The note called *name*, or None when there is none."""
    try:
        response = conn.get(f'/notes/{name}').raise_for_status()
    except HTTPError as e:
        if e.response.status == 404:
            e.response.json()  # read the body: the connection goes on
            return None
        raise
    if response.headers.get('content-type') != 'application/json':
        raise ValueError(f'not JSON: {response.headers.get("content-type")!r}')
    note = response.json()
    if not isinstance(note, dict):
        raise ValueError(f'not a JSON object: {note!r}')
    return note


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else 'http://127.0.0.1:8000'
    with Client(url, timeout=10).connect() as conn:
        print(greeting(conn), end='')
        put_note(conn, 'shopping', {'milk': 2, 'bread': 1})
        print('shopping:', get_note(conn, 'shopping'))
        print('holidays:', get_note(conn, 'holidays'))


if __name__ == '__main__':
    main()
