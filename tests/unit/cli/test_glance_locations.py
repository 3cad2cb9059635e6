"""doctor's location check: each verdict from what Glance and Keystone
answer.

Glance and Keystone are faked here: ``FakeSession`` stands in for a
keystoneauth Session and answers the HTTP statuses each case needs.  The
check against the real Keystone and Glance (ok, and a [glance] user
without the service role) is tests/e2e/test_scenarios.py's
test_7_glance_user_without_service_role.
"""

import types
import unittest

from keystoneauth1 import exceptions as ks_exceptions

from cinder_rbd_bootcache.cli import glance_locations as gl

IMAGE = '0b7f4d4e-6a3c-4c2e-9d7e-1f1f0c2a9a11'
GLANCE = 'http://glance.example:9292'


class FakeResponse:

    def __init__(self, status, body=None):
        self.status_code = status
        self._body = body
        self.text = str(body)

    def json(self):
        return self._body


class FakeSession:
    """Answers GETs by path; records what was asked."""

    def __init__(self, answers, raises=None):
        self.answers = answers
        self.raises = raises
        self.asked = []

    def get(self, url, raise_exc=True):
        path = url[len(GLANCE):]
        self.asked.append(path)
        if self.raises:
            raise self.raises
        return self.answers[path]


def conf(auth_type='password', servers=(GLANCE,)):
    return types.SimpleNamespace(
        glance=types.SimpleNamespace(auth_type=auth_type, username='cinder',
                                     region_name=None),
        glance_api_servers=list(servers),
        glance_catalog_info='image:glance:publicURL')


LOCATIONS = '/v2/images/%s/locations' % IMAGE


class VerdictTest(unittest.TestCase):

    def check(self, answers, image=IMAGE, **kwargs):
        session = FakeSession(answers, **kwargs)
        return gl.check(conf(), image, session=session), session

    def test_ok_lists_the_locations(self):
        (check, result, detail), session = self.check({LOCATIONS: (
            FakeResponse(200, [{'url': 'rbd://fsid/images/%s/snap' % IMAGE,
                                'metadata': {'store': 'ceph'}}]))})
        self.assertEqual(('glance locations', 'ok'), (check, result))
        self.assertIn('1 location(s) (rbd)', detail)
        self.assertIn('as cinder', detail)
        self.assertEqual([LOCATIONS], session.asked)

    def test_no_glance_section(self):
        check, result, detail = gl.check(conf(auth_type=None), IMAGE,
                                         session=FakeSession({}))
        # Creates still work without them (downloads, not clones).
        self.assertEqual('warning', result)
        self.assertIn('no [glance] service credentials', detail)
        self.assertIn('auth_type = password', detail)

    def test_wrong_credentials_401(self):
        _check, result, detail = self.check(
            {}, raises=ks_exceptions.Unauthorized())[0]
        self.assertEqual('error', result)
        self.assertIn('401 Unauthorized', detail)
        self.assertIn('[glance] credentials', detail)

    def test_missing_service_role_403(self):
        _check, result, detail = self.check(
            {LOCATIONS: FakeResponse(403, 'Forbidden')})[0]
        self.assertEqual('error', result)
        self.assertIn('403 Forbidden', detail)
        self.assertIn('openstack role add --user cinder', detail)

    def test_no_location_api_404_on_an_existing_image(self):
        _check, result, detail = self.check({
            LOCATIONS: FakeResponse(404, 'Not Found'),
            '/v2/images/%s' % IMAGE: FakeResponse(200, {'id': IMAGE})})[0]
        self.assertEqual('error', result)
        self.assertIn('no location API', detail)
        self.assertIn('show_multiple_locations', detail)

    def test_image_not_found(self):
        _check, result, detail = self.check({
            LOCATIONS: FakeResponse(404, 'Not Found'),
            '/v2/images/%s' % IMAGE: FakeResponse(404, 'Not Found')})[0]
        self.assertEqual('warning', result)
        self.assertIn('pass --image', detail)

    def test_without_image_the_first_listed_is_asked_about(self):
        (_c, result, _d), session = self.check({
            '/v2/images?limit=1': FakeResponse(200, {'images': [
                {'id': IMAGE}]}),
            LOCATIONS: FakeResponse(200, [])}, image=None)
        self.assertEqual('ok', result)
        self.assertEqual(['/v2/images?limit=1', LOCATIONS], session.asked)

    def test_a_user_that_may_not_list_images_is_told_to_pass_one(self):
        (_c, result, detail), _s = self.check({
            '/v2/images?limit=1': FakeResponse(403, 'Forbidden')},
            image=None)
        self.assertEqual('warning', result)
        self.assertIn('pass --image IMAGE_ID', detail)

    def test_glance_unreachable(self):
        _check, result, detail = self.check(
            {}, raises=ks_exceptions.ConnectFailure('refused'))[0]
        self.assertEqual('error', result)
        self.assertIn('cannot reach Glance', detail)
