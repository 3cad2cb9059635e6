"""Whether cinder-volume can read images' locations in Glance.

Glance no longer shows an image's locations to its users (OSSN-0065:
``show_image_direct_url`` and ``show_multiple_locations`` are off in
deployments since 2024.2).  Cinder reads them through Glance's location
API, ``GET /v2/images/{id}/locations``, whose policy asks for the
``service`` role; Cinder calls it with the service credentials of
cinder.conf's ``[glance]`` section (keystoneauth options) and, when that
fails, gets no location: an image in Ceph is then downloaded (or comes
from the boot cache) instead of being cloned.

:func:`check` asks Glance exactly that question, as cinder-volume's
``[glance]`` user, about one image, and :func:`verdict` turns the answer
into a doctor row that says what to fix.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

OK, WARNING, ERROR = 'ok', 'warning', 'error'
CHECK = 'glance locations'
#: What an operator adds to cinder.conf, in the rows' details.
SECTION_HINT = ('[glance] auth_type = password, auth_url, username, '
                'password, user_domain_name, project_name, '
                'project_domain_name: a service user with the "service" '
                'role in its project')
Row = tuple[str, str, str]


class Answer:
    """What Glance (or Keystone) answered: an HTTP status, or why there
    was none."""

    def __init__(self, status: Optional[int] = None, body: Any = None,
                 failure: str = '', image_id: str = '',
                 image_exists: Optional[bool] = None,
                 warning: str = '') -> None:
        self.status = status
        self.body = body
        self.failure = failure
        self.warning = warning
        self.image_id = image_id
        self.image_exists = image_exists


def verdict(answer: Answer, user: str, url: str) -> Row:
    """The doctor row for ``answer``, asked as ``user`` of ``url``."""
    asked = 'GET %s/v2/images/%s/locations as %s' % (url, answer.image_id,
                                                     user)
    if answer.failure:
        return (CHECK, ERROR, answer.failure)
    if answer.warning:
        return (CHECK, WARNING, answer.warning)
    if answer.status == 200:
        locations = answer.body if isinstance(answer.body, list) else []
        schemes = sorted({str(loc.get('url', '')).split(':', 1)[0]
                          for loc in locations if isinstance(loc, dict)})
        return (CHECK, OK, '%s: %d location(s) (%s); Cinder can clone '
                'images stored in Ceph' % (asked, len(locations),
                                           ', '.join(schemes) or 'none'))
    if answer.status == 401:
        return (CHECK, ERROR, '%s: 401 Unauthorized: Keystone refused the '
                '[glance] credentials of cinder.conf; fix username, '
                'password, project and domains there' % asked)
    if answer.status == 403:
        return (CHECK, ERROR, '%s: 403 Forbidden: user %s lacks the '
                '"service" role Glance\'s location API asks for; images in '
                'Ceph are downloaded instead of cloned.  Run "openstack '
                'role add --user %s --project <its project> service"'
                % (asked, user, user))
    if answer.status in (404, 405, 501):
        if answer.image_exists:
            return (CHECK, ERROR, '%s: %d: this Glance has no location API '
                    '(it came with Glance 2024.2); with an older Glance, '
                    'Cinder reads locations only if show_multiple_locations '
                    'or show_image_direct_url is on in glance-api.conf'
                    % (asked, answer.status))
        return (CHECK, WARNING, '%s: %d: image not found by the [glance] '
                'user; pass --image with an image it can see'
                % (asked, answer.status))
    return (CHECK, ERROR, '%s: unexpected answer %s: %s' % (
        asked, answer.status, str(answer.body)[:200]))


def missing_credentials(conf: Any) -> Optional[Row]:
    """A row if cinder.conf has no ``[glance]`` service credentials: a
    warning, not an error, because creates still work (the boot cache or
    an import fills the volume) and a Glance not on Ceph has nothing to
    clone."""
    section = getattr(conf, 'glance', None)
    auth_type = getattr(section, 'auth_type', None) if section else None
    if not auth_type:
        return (CHECK, WARNING, 'cinder.conf has no [glance] service '
                'credentials, so Cinder cannot read image locations '
                'through Glance\'s location API and downloads images in '
                'Ceph instead of cloning them; add %s' % SECTION_HINT)
    return None


def _glance_url(conf: Any, session: Any) -> str:
    """Where Cinder finds Glance: ``glance_api_servers``, else the
    catalog (``glance_catalog_info``)."""
    servers = [s for s in (conf.glance_api_servers or []) if s]
    if servers:
        url = servers[0]
        return (url if '//' in url else 'http://' + url).rstrip('/')
    service_type, _name, interface = conf.glance_catalog_info.split(':')
    return session.get_endpoint(
        service_type=service_type,
        interface=interface.replace('URL', ''),
        region_name=conf.glance.region_name).rstrip('/')


def check(conf: Any, image_id: Optional[str] = None,
          session: Any = None) -> Row:
    """Ask Glance for the locations of ``image_id`` (else of the first
    image the ``[glance]`` user sees) as cinder-volume does.
    ``session``: a keystoneauth Session; by default one made from
    cinder.conf's ``[glance]`` options."""
    row = missing_credentials(conf)
    if row:
        return row
    from keystoneauth1 import exceptions as ks_exceptions
    user = '[glance] user'
    try:
        if session is None:
            session = _session(conf)
        # The plugin's own options (username, ...) are registered in
        # [glance] once it is loaded.
        user = (getattr(conf.glance, 'username', None) or
                getattr(conf.glance, 'user_id', None) or user)
        url = _glance_url(conf, session)
    except ks_exceptions.Unauthorized:
        return verdict(Answer(401, image_id=image_id or '<image>'), user,
                       '<glance>')
    except Exception as exc:
        return (CHECK, ERROR, 'cannot authenticate as the [glance] user '
                '%s or find Glance: %s' % (user, exc))
    try:
        return verdict(_ask(session, url, image_id), user, url)
    except ks_exceptions.Unauthorized:
        return verdict(Answer(401, image_id=image_id or '<image>'), user,
                       url)
    except Exception as exc:
        return (CHECK, ERROR, 'cannot reach Glance at %s as %s: %s'
                % (url, user, exc))


def _session(conf: Any) -> Any:
    from keystoneauth1 import loading as ks_loading
    from keystoneauth1 import session as ks_session
    auth = ks_loading.load_auth_from_conf_options(conf, 'glance')
    verify: Any = not conf.glance_api_insecure
    if verify and conf.glance_ca_certificates_file:
        verify = conf.glance_ca_certificates_file
    return ks_session.Session(auth=auth, verify=verify,
                              timeout=conf.glance_request_timeout)


def _ask(session: Any, url: str, image_id: Optional[str]) -> Answer:
    if not image_id:
        listed = session.get('%s/v2/images?limit=1' % url, raise_exc=False)
        if listed.status_code == 401:
            return Answer(401, listed.text, image_id='<image>')
        if listed.status_code != 200:
            # A service user needs no other role than "service", which
            # does not list images.
            return Answer(warning='the [glance] user may not list images '
                          '(HTTP %d), so no image to ask about: pass '
                          '--image IMAGE_ID' % listed.status_code)
        images = listed.json().get('images') or []
        if not images:
            return Answer(warning='the [glance] user sees no image to ask '
                          'Glance about: pass --image IMAGE_ID')
        image_id = images[0]['id']
    answer = session.get('%s/v2/images/%s/locations' % (url, image_id),
                         raise_exc=False)
    result = Answer(answer.status_code, image_id=image_id)
    if answer.status_code == 200:
        result.body = answer.json()
    else:
        result.body = answer.text
    if answer.status_code in (404, 405, 501):
        shown = session.get('%s/v2/images/%s' % (url, image_id),
                            raise_exc=False)
        result.image_exists = shown.status_code == 200
    return result
