"""The users' API clients, in-process, for the end-to-end environment.

The e2e tests run the ``cinder`` and ``glance`` commands as users do; a
benchmark cannot: each command spends about a second starting Python
before its first request.  These are the same libraries the commands are
made of (python-cinderclient, python-glanceclient, keystoneauth1), with
the token the environment's noauth services accept.
"""

from __future__ import annotations

from typing import Any

from bootcache_testkit.e2e import environment

#: Cinder's and Nova's noauth token: this user in this project (admin).
TOKEN = '%s:%s' % (environment.USER_ID, environment.PROJECT_ID)
CINDER_API_VERSION = '3.70'


def cinder(env: environment.Environment) -> Any:
    """A cinderclient v3 Client as the project's user.  One per thread:
    a keystoneauth Session's connection pool is not meant to be shared
    by concurrent callers."""
    from cinderclient import client as cinder_client
    from keystoneauth1 import session
    from keystoneauth1 import token_endpoint
    auth = token_endpoint.Token(
        '%s/v3/%s' % (env.cinder_url, environment.PROJECT_ID), TOKEN)
    return cinder_client.Client(CINDER_API_VERSION,
                                session=session.Session(auth=auth))


def glance(env: environment.Environment) -> Any:
    """A glanceclient v2 Client (glance-api runs without Keystone: any
    token is the admin)."""
    from glanceclient import client as glance_client
    return glance_client.Client('2', endpoint=env.glance_url, token='e2e')


def upload_image(glance_api: Any, path: str, disk_format: str, store: str,
                 name: str) -> Any:
    """A public image with ``path``'s bytes in Glance store ``store``
    (``ceph``: the rbd store; ``local``: the file store); returns it
    once active."""
    import os
    image = glance_api.images.create(name=name, disk_format=disk_format,
                                     container_format='bare',
                                     visibility='public')
    with open(path, 'rb') as f:
        glance_api.images.upload(image['id'], f,
                                 image_size=os.path.getsize(path),
                                 backend=store)
    image = glance_api.images.get(image['id'])
    if image['status'] != 'active':
        raise RuntimeError('image %s is %s after its upload' % (
            image['id'], image['status']))
    return image
