"""nova-api's WSGI application for gunicorn.

Nova parses ``sys.argv`` when its WSGI application loads (its config comes
from ``OS_NOVA_CONFIG_FILES``); under gunicorn that is gunicorn's own
command line, which Nova rejects.  So the arguments go first.
"""

import sys

sys.argv = sys.argv[:1]

from nova.wsgi.osapi_compute import application  # noqa: E402,F401
