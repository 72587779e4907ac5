"""Dataset validation, as run by the validation Job: load, check the contract, version, publish.

``load`` reads builtin or URI sources into a DataFrame, ``contract`` checks it and infers its
schema, ``snapshot`` defines the canonical encoding behind the version hash and writes the
content-addressed snapshot, ``profiling`` builds the drift reference, ``job`` ties them together
and ``cli`` is the ``modelwerk data`` command.
"""
