"""Test suites of modelwerk.

A package (with ``tests/cluster`` and ``tests/integration``) so that pytest's
default "prepend" import mode puts the repository root on ``sys.path`` and
test code can ``import tests.cluster``.
"""
