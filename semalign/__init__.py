"""semalign — the companion package of the semantic-alignment book.

Nothing heavy is imported here: torch, transformers and sklearn load when a
submodule that needs them is first used, so ``semalign --help`` answers at once.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
