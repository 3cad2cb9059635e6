"""The ``[glance]`` service user's keystoneauth plugin is made once per
process, through Cinder's own ``_create_glance_client``.

No Keystone here: building a glance client does not sign in (the plugin
asks for a token on the first request).  What is checked is the plugin
object each client gets; the e2e bench shows the sign-ins saved.
"""

from __future__ import annotations

import importlib.metadata
import unittest

from keystoneauth1 import loading as real_loading
from oslo_config import cfg

from cinder_rbd_bootcache.upstream import compat
from cinder_rbd_bootcache.upstream import glance_service_auth

RELEASE = int(importlib.metadata.version('cinder').split('.')[0])


def _auth_of(client):
    """The auth plugin of a glanceclient built on a keystoneauth session,
    unwrapped from Cinder's service-token wrapper if one is set."""
    auth = client.http_client.auth
    return getattr(auth, 'user_auth', auth)


class GlanceServiceAuthTest(unittest.TestCase):

    def setUp(self):
        self.glance = compat.glance_service_auth_module()
        if self.glance is None:
            self.assertEqual(26, RELEASE)
            self.skipTest('Cinder %d never signs in as [glance]' % RELEASE)
        # Options are read only from a parsed configuration (no files);
        # once, before [glance]'s required options exist.
        if cfg.CONF._namespace is None:
            cfg.CONF([], project='cinder', default_config_files=[],
                     default_config_dirs=[])
        self._password_section('glance')
        self._override('auth_strategy', 'keystone')
        original = self.glance.ks_loading
        self.addCleanup(setattr, self.glance, 'ks_loading', original)

    def _password_section(self, group):
        """``[group]`` as devstack writes ``[glance]`` for Cinder."""
        real_loading.register_auth_conf_options(cfg.CONF, group)
        password_opts = [o._to_oslo_opt() for o in
                         real_loading.get_plugin_loader('password')
                         .get_options()]
        cfg.CONF.register_opts(password_opts, group=group)
        for name, value in (('auth_type', 'password'),
                            ('auth_url', 'http://127.0.0.1:5/identity'),
                            ('username', group),
                            ('password', 'not-used'),
                            ('project_name', 'service'),
                            ('user_domain_name', 'Default'),
                            ('project_domain_name', 'Default')):
            self._override(name, value, group)

    def _override(self, name, value, group=None):
        cfg.CONF.set_override(name, value, group=group)
        self.addCleanup(cfg.CONF.clear_override, name, group=group)

    def _client(self, privileged: bool):
        from cinder import context
        ctx = context.RequestContext('user', 'project', auth_token='t')
        return self.glance._create_glance_client(
            ctx, '127.0.0.1:9292', False, privileged_user=privileged)

    def test_without_install_each_lookup_builds_a_new_plugin(self):
        # Cinder's own behaviour, the reason for the module.
        self.assertIsNot(_auth_of(self._client(True)),
                         _auth_of(self._client(True)))

    def test_installed_every_lookup_gets_one_plugin(self):
        glance_service_auth.install()
        first = _auth_of(self._client(True))
        self.assertEqual('glance', first._username)
        self.assertIs(first, _auth_of(self._client(True)))

    def test_install_twice_wraps_once(self):
        glance_service_auth.install()
        loader = self.glance.ks_loading
        glance_service_auth.install()
        self.assertIs(loader, self.glance.ks_loading)
        self.assertIs(real_loading, loader.loading)

    def test_user_requests_keep_the_users_token(self):
        glance_service_auth.install()
        user_auth = _auth_of(self._client(False))
        self.assertEqual('t', user_auth.get_token(None))
        self.assertIsNot(user_auth, _auth_of(self._client(True)))

    def test_other_groups_and_names_are_keystoneauths(self):
        loader = glance_service_auth.ReusingLoader(real_loading)
        self.assertIs(real_loading.get_plugin_loader,
                      loader.get_plugin_loader)
        self._password_section('bootcache_test_other')
        other = [loader.load_auth_from_conf_options(
            cfg.CONF, 'bootcache_test_other') for _ in range(2)]
        self.assertEqual('bootcache_test_other', other[0]._username)
        self.assertIsNot(other[0], other[1])
