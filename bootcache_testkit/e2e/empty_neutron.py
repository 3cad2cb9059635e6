"""A Neutron API with nothing in it, for nova-api and nova-compute (e2e only).

Servers are booted with ``"networks": "none"``, so Nova never creates a
port.  Deleting a server still asks Neutron for the server's ports (to
release them), and without a Neutron endpoint that fails: nova-compute
puts the server in ERROR, nova-api answers 500 for a server that never
reached a host.  This answers what an empty Neutron answers: every list
is empty, every single resource is not found.
"""

from __future__ import annotations

import json
from typing import Any
from typing import Callable
from typing import Iterable


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """``GET /v2.0/COLLECTION`` -> ``{"COLLECTION": []}``; anything
    else 404."""
    parts = [p for p in environ.get('PATH_INFO', '').split('/') if p]
    if environ['REQUEST_METHOD'] == 'GET' and len(parts) == 2 and \
            parts[0] == 'v2.0':
        collection = parts[1].removesuffix('.json')
        return _reply(start_response, '200 OK', {collection: []})
    return _reply(start_response, '404 Not Found', {'NeutronError': {
        'type': 'NotFound', 'message': 'empty Neutron: nothing here',
        'detail': ''}})


def _reply(start_response: Callable, status: str, body: Any
           ) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data)))])
    return [data]
