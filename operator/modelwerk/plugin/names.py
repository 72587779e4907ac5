"""How the plugin names the kind it works on, in requests and in messages."""

from modelwerk.api import GROUP, VERSION

PLURAL = "deployments"
RESOURCE = f"{PLURAL}.{GROUP}"
"""What kubectl calls it in messages: ``deployments.modelwerk.dev/iris``."""

__all__ = ["GROUP", "PLURAL", "RESOURCE", "VERSION"]
