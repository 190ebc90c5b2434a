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


def _dataset_key(name: str, df) -> str:
    """``name@<hash>``: the loader's own key when it gives one (``df.attrs["dataset_key"]``),
    else a hash of the ids and inputs, so an edited dataset never hits an old cache entry."""
    import hashlib

    key = getattr(df, "attrs", {}).get("dataset_key")
    if key:
        return str(key)
    h = hashlib.sha256()
    for col in [c for c in ("id", "text", "image") if c in df.columns]:
        for v in df[col].astype(str):
            b = v.encode()
            h.update(len(b).to_bytes(8, "little") + b)
    return f"{name}@{h.hexdigest()[:16]}"


def cli(args) -> int:
    """``semalign embed ENCODER DATASET [--device D] [--batch-size B]``: embed every record of
    a dataset (``semalign.data.load_dataset``) into the embedding cache and print where."""
    import sys
    import time

    try:
        from semalign.data import load_dataset
    except ImportError as e:
        print(f"error: semalign.data.load_dataset is not available ({e})", file=sys.stderr)
        return 2
    try:
        enc = get_encoder(args.encoder, device=args.device)
    except EncoderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        df = load_dataset(args.dataset)
    except Exception as e:  # noqa: BLE001 — the data layer's errors already say what to do
        print(f"error: {e}", file=sys.stderr)
        return 2
    col = "text" if enc.modality == "text" else "image"
    if col not in df.columns or "id" not in df.columns:
        print(f"error: dataset {args.dataset!r} has no '{col}' and 'id' columns (has "
              f"{list(df.columns)}), so {enc.name} ({enc.modality}) cannot embed it", file=sys.stderr)
        return 2
    from semalign.cache import embed_cached

    key = _dataset_key(args.dataset, df)
    t0 = time.perf_counter()
    emb = embed_cached(enc, list(df[col]), list(df["id"].astype(str)), key,
                       batch_size=args.batch_size, progress=True)
    print(f"{enc.name} x {key}: {emb.shape[0]} x {emb.shape[1]} embeddings "
          f"({time.perf_counter() - t0:.1f} s) in the cache")
    return 0


def cli_list(args) -> int:
    """``semalign encoders``: the registry, one line per encoder (its preprocessing last)."""
    specs = encoder_specs()
    srcs = {n: str(s.get("id") or s.get("asset") or s.get("path") or "") for n, s in specs.items()}
    w = max([len("source")] + [len(v) for v in srcs.values()])
    print(f"{'name':20s} {'modality':8s} {'domain':19s} {'dim':>5s}  {'offline':7s} "
          f"{'source':{w}s}  preprocessing")
    for name in sorted(specs):
        s = specs[name]
        pre = " ".join(str(s.get("preprocessing") or "-").split())
        print(f"{name:20s} {s.get('modality', '?'):8s} {s.get('domain', '?'):19s} "
              f"{str(s.get('dim', '?')):>5s}  {'yes' if s.get('offline') else 'no':7s} "
              f"{srcs[name]:{w}s}  {pre}")
    return 0
