"""``cinder-rbd-bootcache``: the operator's view of the boot cache.

A thin cliff layer over the modules the driver uses: ``backend`` reads
cinder.conf and builds the driver, ``entries`` lists, shows, evicts and
verifies entries, ``warm`` populates them, ``doctor`` checks the setup.
"""
