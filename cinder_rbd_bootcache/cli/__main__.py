import sys

from cinder_rbd_bootcache.cli import app

sys.exit(app.main())
