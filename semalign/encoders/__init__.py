"""Encoders: a registry of named models that turn texts or images into embeddings.

>>> from semalign.encoders import get_encoder, list_encoders
>>> enc = get_encoder("minilm-l6")               # registry name, hub id (org/name) or local folder
>>> emb = enc.embed(["a report", "another"])     # np.float32 (2, enc.dim)

See :mod:`semalign.encoders.base` for how to add an encoder (YAML or Python) and a kind.
torch and transformers are imported only when an encoder is built.
"""

from __future__ import annotations

from semalign.encoders.base import (
    DOMAINS,
    MODALITIES,
    Encoder,
    EncoderError,
    encoder_specs,
    get_encoder,
    list_encoders,
    register_encoder,
    register_kind,
    resolve_device,
)

__all__ = [
    "DOMAINS", "MODALITIES", "Encoder", "EncoderError", "encoder_specs", "get_encoder",
    "list_encoders", "register_encoder", "register_kind", "resolve_device", "cli", "cli_list",
]


def cli(args) -> int:
    """``semalign embed ENCODER DATASET``: embed a dataset into the cache."""
    raise NotImplementedError  # filled in below once the engine lands


def cli_list(args) -> int:
    """``semalign encoders``: print the registry."""
    for name in list_encoders():
        print(name)
    return 0
