"""kopf glue: importing this package registers every handler (``kopf run -m modelwerk.handlers``)."""

from modelwerk.handlers import kinds, startup

__all__ = ["kinds", "startup"]
