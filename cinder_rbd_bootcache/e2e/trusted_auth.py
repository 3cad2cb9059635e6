"""Stand-in for keystonemiddleware's auth_token in nova-api (e2e only).

Nova 34 has no ``noauth2`` strategy any more: its API pipeline always runs
``authtoken`` then ``keystonecontext``.  Without Keystone, this filter
takes the place of ``authtoken`` and says what Cinder's and Placement's
noauth modes say: the token ``USER:PROJECT`` is that user in that project,
with the admin role.  The token is passed on untouched, so Nova's calls to
Cinder and Glance carry it, as they would carry a Keystone token.
"""

from __future__ import annotations

from typing import Any, Callable

import webob.dec
import webob.exc


class TrustedAuth:

    def __init__(self, application: Callable) -> None:
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req: webob.Request) -> Any:
        token = req.headers.get('X-Auth-Token')
        if not token:
            return webob.exc.HTTPUnauthorized()
        user_id, _sep, project_id = token.partition(':')
        req.headers.update({
            'X-Identity-Status': 'Confirmed',
            'X-User-Id': user_id,
            'X-Project-Id': project_id or user_id,
            'X-Roles': 'admin,member,reader',
        })
        return self.application


def filter_factory(global_conf: dict, **local_conf: Any) -> Callable:
    return TrustedAuth
