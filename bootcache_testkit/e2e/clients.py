"""The users' API clients, in-process, for the end-to-end environment.

The e2e tests run the ``openstack`` and ``cinder`` commands as users do; a
benchmark cannot: each command spends about a second starting Python
before its first request.  These are the same libraries the commands are
made of (python-cinderclient, python-glanceclient, keystoneauth1), with a
Keystone session of the environment's users; the endpoints come from
Keystone's catalog.
"""

from __future__ import annotations

from typing import Any

from bootcache_testkit.e2e import environment

CINDER_API_VERSION = environment.CINDER_API_VERSION


def cinder(env: environment.Environment, user: str = 'demo') -> Any:
    """A cinderclient v3 Client as Keystone user ``user``.  One per
    thread: a keystoneauth Session's connection pool is not meant to be
    shared by concurrent callers."""
    from cinderclient import client as cinder_client
    assert env.identity is not None
    return cinder_client.Client(CINDER_API_VERSION,
                                session=env.identity.session(user),
                                service_type='block-storage')


def glance(env: environment.Environment, user: str = 'admin') -> Any:
    """A glanceclient v2 Client as Keystone user ``user`` (the cloud
    admin: it makes public images)."""
    from glanceclient import client as glance_client
    assert env.identity is not None
    return glance_client.Client('2', session=env.identity.session(user))


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
