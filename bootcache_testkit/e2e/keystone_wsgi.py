"""keystone-api's WSGI application for gunicorn.

Keystone parses ``sys.argv`` when its WSGI application loads (its config
comes from ``OS_KEYSTONE_CONFIG_DIR``); under gunicorn that is gunicorn's
own command line, which Keystone rejects.  So the arguments go first.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
