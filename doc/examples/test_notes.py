"""Tests of the notes service as its author writes them: pytest, a TempServer, a Client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from notes_app import build_app
from notes_client import get_note, greeting, put_note

from degu.client import Client
from degu.misc import TempServer


@pytest.fixture
def client() -> Iterator[Client]:
    # thread=True: the server runs in this process, for a fast test.
    with TempServer(('127.0.0.1', 0), build_app(), thread=True) as server:
        with Client(server.address) as client:
            yield client


def test_greeting(client: Client) -> None:
    assert greeting(client) == 'hello from the notes service\n'
    response = client.head('/')
    assert (response.status, response.headers['content-length'], response.body) == (200, 29, None)


def test_notes(client: Client) -> None:
    assert get_note(client, 'todo') is None
    put_note(client, 'todo', {'write': 'tests'})
    assert get_note(client, 'todo') == {'write': 'tests'}


def test_bad_note(client: Client) -> None:
    response = client.put('/notes/x', {'content-type': 'application/json'}, b'{not json')
    assert response.status == 400
    assert response.json() == {'error': 'need a JSON body'}
    response = client.delete('/notes/x')
    assert response.status == 405
    assert response.headers['allow'] == 'GET, PUT'
