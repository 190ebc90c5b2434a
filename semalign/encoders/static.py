"""Kind ``wordllama``: a static token-embedding table (WordLlama, 32000 x 256).

Embedding = mean of the table rows of a text's tokens, L2-normalised. This matches
``wordllama.WordLlamaInference.embed(texts, norm=True)`` (read in the 0.4.0.post1 wheel): the
tokenizer JSON loaded with ``tokenizers.Tokenizer.from_file``, ``encode_batch(...,
add_special_tokens=False)`` (no ``<s>``), no truncation, ids clipped to the table, masked mean
(``avg_pool``), then division by the norm. Tokenising one text at a time gives the same ids as
a padded batch, so the mean is over exactly the text's own tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semalign.encoders.base import Encoder, EncoderError, register_kind


class WordLlamaEncoder(Encoder):
    default_batch_size = 256

    def __init__(self, *args: Any, table: np.ndarray, tokenizer: Any, weights_sha256: str, **kw: Any):
        super().__init__(*args, **kw)
        self.table, self.tokenizer, self.weights_sha256 = table, tokenizer, weights_sha256
        self.normalize = bool(self.spec.get("normalize", True))

    def fingerprint(self) -> dict:
        fp = super().fingerprint()
        fp.update(weights_sha256=self.weights_sha256, normalize=self.normalize,
                  preprocessing="wordllama tokenizer, add_special_tokens=False, no truncation")
        return fp

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        encs = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [e.ids for e in encs]

    def _embed_batch(self, batch: list) -> np.ndarray:
        out = np.zeros((len(batch), self.dim), dtype=np.float32)
        for i, ids in enumerate(self.token_ids(batch)):
            if not ids:
                continue  # empty text: zero vector (wordllama gives 0/0 = nan; zero is safer)
            ids = np.clip(np.asarray(ids, dtype=np.int64), 0, self.table.shape[0] - 1)
            # float64 accumulation: the result does not depend on the batch it came in
            out[i] = self.table[ids].astype(np.float64).mean(axis=0)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return out


@register_kind("wordllama")
def build(spec: dict, device: str) -> Encoder:
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from semalign._io import sha256_file
    from semalign.assets import fetch

    root = fetch(spec["asset"]) if spec.get("asset") else None
    wpath = (root / spec["weights"]) if root else spec["weights"]
    tpath = (root / spec["tokenizer"]) if root else spec["tokenizer"]
    try:
        tensors = load_file(str(wpath))
        tok = Tokenizer.from_file(str(tpath))
    except (OSError, Exception) as e:  # noqa: BLE001 — safetensors/tokenizers raise their own types
        raise EncoderError(f"encoder {spec.get('name')!r}: cannot read {wpath} / {tpath}: {e}") from None
    key = spec.get("tensor", "embedding.weight")
    if key not in tensors:
        raise EncoderError(f"{wpath} has no tensor {key!r} (has {sorted(tensors)})")
    table = tensors[key].astype(np.float32)
    tok.no_padding()
    tok.no_truncation()
    dim = table.shape[1]
    if spec.get("dim") and int(spec["dim"]) != dim:
        raise EncoderError(f"encoder {spec.get('name')!r}: registry dim {spec['dim']} != table width {dim}")
    return WordLlamaEncoder(spec.get("name", "wordllama"), spec.get("modality", "text"),
                            spec.get("domain", "general"), dim, spec=spec, device="cpu",
                            dtype="float32", table=table, tokenizer=tok,
                            weights_sha256=sha256_file(wpath))
