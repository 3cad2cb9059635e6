"""Keystone for the end-to-end environment, set up as a deployment has it.

keystone-api runs under gunicorn on 127.0.0.1 with its database in the
environment's MariaDB and its fernet and credential keys in the
environment's directory.  ``keystone-manage bootstrap`` makes the admin
user, the ``admin`` project and the identity endpoint; then, as devstack
does (lib/keystone, lib/glance, lib/cinder, lib/nova, lib/placement):

* a ``service`` project and a ``service`` role;
* one user per service in the ``service`` project with the ``service``
  role, and also ``admin`` for glance, nova and placement;
* a ``demo`` project with a ``demo`` user (``member``): the users'
  commands of the tests run as that user.

Every password is random, made here, and reaches the services only through
their configuration files (mode 0600) and the clients only through their
environment (``OS_PASSWORD``): never on a command line, never in a log.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Any
from typing import NamedTuple

from bootcache_testkit.e2e.processes import free_port
from bootcache_testkit.e2e.processes import Supervisor

REGION = 'RegionOne'
SERVICE_PROJECT = 'service'
#: The service users, and the role each has besides ``service``.
SERVICE_USERS = {'glance': 'admin', 'cinder': None, 'nova': 'admin',
                 'placement': 'admin'}


def _bin(name: str) -> str:
    from bootcache_testkit.e2e import services
    return services._bin(name)


class Account(NamedTuple):
    username: str
    password: str
    project: str


class Identity:
    """A running Keystone: its URL and the accounts made in it."""

    def __init__(self, url: str, accounts: dict[str, Account]) -> None:
        self.url = url
        self.accounts = accounts
        self._local = threading.local()

    def environ(self, user: str = 'demo') -> dict[str, str]:
        """What the OpenStack clients read: ``user``'s credentials, as an
        openrc file sets them."""
        account = self.accounts[user]
        return {'OS_AUTH_URL': self.url, 'OS_AUTH_TYPE': 'password',
                'OS_IDENTITY_API_VERSION': '3',
                'OS_USERNAME': account.username,
                'OS_PASSWORD': account.password,
                'OS_PROJECT_NAME': account.project,
                'OS_USER_DOMAIN_NAME': 'Default',
                'OS_PROJECT_DOMAIN_NAME': 'Default',
                'OS_REGION_NAME': REGION,
                'OS_INTERFACE': 'public'}

    def session(self, user: str = 'demo') -> Any:
        """A keystoneauth Session authenticated as ``user``, one per
        thread and user (its token is reused until it expires)."""
        sessions = self._local.__dict__.setdefault('sessions', {})
        if user not in sessions:
            sessions[user] = self._new_session(user)
        return sessions[user]

    def _new_session(self, user: str) -> Any:
        from keystoneauth1.identity import v3
        from keystoneauth1 import session
        account = self.accounts[user]
        return session.Session(auth=v3.Password(
            auth_url=self.url, username=account.username,
            password=account.password, project_name=account.project,
            user_domain_name='Default', project_domain_name='Default'))

    def admin(self) -> Any:
        """keystoneclient v3 as the cloud admin."""
        from keystoneclient.v3 import client
        return client.Client(session=self.session('admin'),
                             interface='public')

    def auth_options(self, section: str, user: str) -> str:
        """A keystoneauth ``password`` section for service user ``user``
        (devstack's configure_keystoneauth)."""
        account = self.accounts[user]
        return (f'[{section}]\n'
                f'auth_type = password\n'
                f'interface = public\n'
                f'auth_url = {self.url}\n'
                f'username = {account.username}\n'
                f'password = {account.password}\n'
                f'user_domain_name = Default\n'
                f'project_name = {account.project}\n'
                f'project_domain_name = Default\n'
                f'region_name = {REGION}\n')

    def authtoken(self, user: str, service_type: str) -> str:
        """keystonemiddleware's ``[keystone_authtoken]`` for a service
        whose own user is ``user`` (devstack's
        configure_keystone_authtoken_middleware): a service token is
        only believed if its user has the ``service`` role."""
        return (self.auth_options('keystone_authtoken', user) +
                f'www_authenticate_uri = {self.url}\n'
                f'service_type = {service_type}\n'
                f'service_token_roles = service\n'
                f'service_token_roles_required = true\n')

    def user_id(self, user: str) -> str:
        return self.admin().users.find(name=self.accounts[user].username).id

    def project_id(self, user: str) -> str:
        return self.admin().projects.find(
            name=self.accounts[user].project).id

    def grant(self, role: str, user: str) -> None:
        client = self.admin()
        client.roles.grant(client.roles.find(name=role),
                           user=self.user_id(user),
                           project=self.project_id(user))

    def revoke(self, role: str, user: str) -> None:
        client = self.admin()
        client.roles.revoke(client.roles.find(name=role),
                            user=self.user_id(user),
                            project=self.project_id(user))

    def add_service_user(self, name: str, roles: tuple = ()) -> Account:
        """One more user in the ``service`` project with ``roles``."""
        client = self.admin()
        account = Account(name, secrets.token_urlsafe(18), SERVICE_PROJECT)
        project = client.projects.find(name=SERVICE_PROJECT)
        user = client.users.create(name=name, domain='default',
                                   password=account.password,
                                   default_project=project)
        for role in roles:
            client.roles.grant(client.roles.find(name=role), user=user,
                               project=project)
        self.accounts[name] = account
        return account

    def add_service(self, service_type: str, name: str, url: str) -> None:
        """A catalog entry: one public endpoint in the region."""
        client = self.admin()
        service = client.services.create(name=name, type=service_type)
        client.endpoints.create(service, url, interface='public',
                                region=REGION)
        # A token carries the catalog of when it was issued: this thread's
        # sessions authenticate again, so clients find the new endpoint.
        for cached in self._local.__dict__.get('sessions', {}).values():
            cached.invalidate()


def keystone(supervisor: Supervisor, directory: str,
             database: str) -> Identity:
    """keystone-api under gunicorn, bootstrapped, with the projects,
    roles and users above.  Returns its :class:`Identity`.

    Keystone caches as deployments run it (devstack: ``[cache]`` enabled,
    memcached): without a cache each token validation reads the user,
    project and role assignments from the database again, and a storm of
    creates validates a token in cinder-api and again in glance-api for
    each.  One worker process, so dogpile's in-process memory backend is
    coherent and no memcached has to run."""
    from bootcache_testkit.e2e import services
    os.makedirs(directory, exist_ok=True)
    port = free_port()
    url = 'http://127.0.0.1:%d' % port
    fernet = os.path.join(directory, 'fernet-keys')
    services._write(os.path.join(directory, 'keystone.conf'), f'''
        [DEFAULT]
        log_file = {supervisor.log('keystone-api.app')}
        [database]
        connection = {database}
        [token]
        provider = fernet
        [fernet_tokens]
        key_repository = {fernet}
        [fernet_receipts]
        key_repository = {fernet}
        [credential]
        key_repository = {os.path.join(directory, 'credential-keys')}
        [cache]
        enabled = true
        backend = dogpile.cache.memory
        ''')
    env = {'OS_KEYSTONE_CONFIG_DIR': directory}
    manage = [_bin('keystone-manage'), '--config-file',
              os.path.join(directory, 'keystone.conf')]
    supervisor.run('keystone-manage', manage + ['db_sync'], env)
    user = ['--keystone-user', 'root', '--keystone-group', 'root']
    supervisor.run('keystone-manage', manage + ['fernet_setup'] + user, env)
    supervisor.run('keystone-manage',
                   manage + ['credential_setup'] + user, env)
    accounts = {'admin': Account('admin', secrets.token_urlsafe(18),
                                 'admin'),
                'demo': Account('demo', secrets.token_urlsafe(18), 'demo')}
    for name in SERVICE_USERS:
        accounts[name] = Account(name, secrets.token_urlsafe(18),
                                 SERVICE_PROJECT)
    # The password through the environment: not in the process list.
    supervisor.run('keystone-manage', manage + [
        'bootstrap', '--bootstrap-username', 'admin',
        '--bootstrap-project-name', 'admin',
        '--bootstrap-role-name', 'admin',
        '--bootstrap-service-name', 'keystone',
        '--bootstrap-region-id', REGION,
        '--bootstrap-public-url', url],
        dict(env, OS_BOOTSTRAP_PASSWORD=accounts['admin'].password))
    services._serve_wsgi(supervisor, 'keystone-api', port,
                         'bootcache_testkit.e2e.keystone_wsgi:application',
                         env, threads=8)
    identity = Identity(url, accounts)
    _make_accounts(identity)
    return identity


def _make_accounts(identity: Identity) -> None:
    client = identity.admin()
    roles = {r.name: r for r in client.roles.list()}
    for name in ('admin', 'member', 'reader', 'service'):
        if name not in roles:
            roles[name] = client.roles.create(name=name)
    projects = {}
    for account in identity.accounts.values():
        if account.project in projects:
            continue
        found = client.projects.list(name=account.project)
        projects[account.project] = found[0] if found else \
            client.projects.create(name=account.project, domain='default')
    for name, account in identity.accounts.items():
        if name == 'admin':
            continue
        user = client.users.create(name=account.username, domain='default',
                                   password=account.password,
                                   default_project=projects[account.project])
        project = projects[account.project]
        if name == 'demo':
            given = ['member', 'reader']
        else:
            given = ['service'] + ([SERVICE_USERS[name]]
                                   if SERVICE_USERS[name] else [])
        for role in given:
            client.roles.grant(roles[role], user=user, project=project)
