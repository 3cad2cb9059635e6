"""Cinder's real create_volume flow, in-process, against the sandbox.

Shared by the functional tests, the demo and the benchmark so all three
exercise exactly the same code.  Call :func:`runtime.patch` before anything
imports Cinder: it picks eventlet or native threads, as cinder-volume does.
"""
