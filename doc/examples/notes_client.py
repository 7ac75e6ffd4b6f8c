"""Store a note with the notes service and read it back.

Run ``python3 notes_app.py``, then ``python3 notes_client.py http://127.0.0.1:8000``.
"""

from __future__ import annotations

import sys
from typing import Any

from degu.client import Client, HTTPError


def greeting(client: Client) -> str:
    response = client.get('/').raise_for_status()
    if response.body is None:  # only HEAD, 204 and 304 responses have no body
        raise ValueError(f'no greeting: {response.status} {response.reason}')
    return response.body.read().decode()


def put_note(client: Client, name: str, note: dict[str, Any]) -> None:
    client.put(f'/notes/{name}', json=note).raise_for_status()


def get_note(client: Client, name: str) -> dict[str, Any] | None:
    """The note called *name*, or None when there is none."""
    try:
        response = client.get(f'/notes/{name}').raise_for_status()
    except HTTPError as e:
        if e.response.status == 404:
            e.response.close()  # done with it: its connection goes back to the pool
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
    # The client's pool keeps the connection for the next request; any
    # number of threads may share the client.
    with Client(url, timeout=10) as client:
        print(greeting(client), end='')
        put_note(client, 'shopping', {'milk': 2, 'bread': 1})
        print('shopping:', get_note(client, 'shopping'))
        print('holidays:', get_note(client, 'holidays'))


if __name__ == '__main__':
    main()
