"""Stand-ins for keystonemiddleware's auth_token (e2e only): in nova-api,
and for service tokens in cinder-api.

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


class ServiceToken:
    """In cinder-api, before its noauth filter: a request that carries a
    service token (``X-Service-Token``, which Nova sends with
    ``[service_user] send_service_user_token``) gets the ``service``
    role as the service's, which is what keystonemiddleware says once it
    has validated such a token.  Cinder then treats it as a service's
    request: since OSSA-2023-003 only those may delete an attachment
    without Cinder asking Nova first (which needs a Keystone catalog)."""

    def __init__(self, application: Callable) -> None:
        self.application = application

    @webob.dec.wsgify
    def __call__(self, req: webob.Request) -> Any:
        # Never what a caller says about itself.
        req.headers.pop('X-Service-Roles', None)
        if req.headers.get('X-Service-Token'):
            req.headers['X-Service-Roles'] = 'service'
        return self.application


def service_token_filter_factory(global_conf: dict,
                                 **local_conf: Any) -> Callable:
    return ServiceToken
