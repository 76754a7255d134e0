"""Published checkpoints from the Hugging Face Hub, through huggingface_hub's cache."""

from __future__ import annotations

import re
import socket
import urllib.parse
from pathlib import Path

from ..errors import ModelNotFoundError, missing_dependency

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def hub_filename(repo_id: str) -> str:
    """Checkpoint file name inside a SatCLIP Hub repo (``satclip-vit16-l40.ckpt``)."""
    return repo_id.split("/", 1)[1].lower() + ".ckpt"


def reachable(endpoint: str, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to ``endpoint``'s host opens within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError:
        return False
    return True


def download_from_hub(repo_id: str, filename: str) -> Path:
    """Path of ``filename`` from a Hub repo.

    The local cache is looked at first, so a cached file costs no network round trip; then,
    unless huggingface_hub is offline (``HF_HUB_OFFLINE=1``), the Hub.
    """
    try:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError as exc:
        raise missing_dependency(f"loading {repo_id!r} from the Hugging Face Hub", "hub",
                                 exc) from None
    how_to_fill = (f"On a connected machine run `hf download {repo_id} {filename}` (it fills "
                   "the same cache), or pass the local path of the .ckpt file instead.")
    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFoundError(f"{repo_id}/{filename} is not in the Hugging Face cache and "
                                 f"HF_HUB_OFFLINE is set. {how_to_fill}")
    if not reachable(constants.ENDPOINT):  # huggingface_hub would retry for ~25 s
        raise ModelNotFoundError(f"{repo_id}/{filename} is not in the Hugging Face cache and "
                                 f"the Hub cannot be reached. {how_to_fill}")
    try:
        return Path(hf_hub_download(repo_id, filename))
    except LocalEntryNotFoundError:
        raise ModelNotFoundError(f"{repo_id}/{filename} is not in the Hugging Face cache and "
                                 f"the Hub cannot be reached. {how_to_fill}") from None
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        raise ModelNotFoundError(f"{repo_id}/{filename} does not exist on the Hub: {exc}") from None
