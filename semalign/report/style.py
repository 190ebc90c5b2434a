"""What every artifact of the book shares: Altair set-up, colours, frame checks, encoder lines.

:func:`setup` makes every chart draw as SVG (the browser test looks for ``<svg>`` marks) and
keeps the whole dataset in the spec. :func:`glue_numbers` puts an artifact's key numbers into
the notebook for the prose (``{glue:text}`key:.3f```, myst-nb).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from semalign.vocab import Domain

#: One colour per method, shared by every figure (naive and upper bound in greys, as in Fig. 3).
METHOD_COLOURS = {
    "affine": "#1f77b4",
    "linear": "#ff7f0e",
    "l-ortho": "#2ca02c",
    "ortho": "#d62728",
    "naive": "#7f7f7f",
    "upper_bound": "#000000",
}
METHOD_ORDER = list(METHOD_COLOURS)
#: Colours for methods registered beyond the built-ins (``semalign.align.register_method``),
#: handed out in the order the methods appear; none repeats a built-in's colour.
EXTRA_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a")


def method_palette(present) -> tuple[list[str], list[str]]:
    """``(methods, colours)`` for the methods in ``present``: the built-ins first in their
    fixed order and colours, then any other (registered) method in order of appearance, each
    with a colour of its own — so a newly registered method is drawn without editing this file."""
    seen = list(dict.fromkeys(str(m) for m in present))
    names = [m for m in METHOD_ORDER if m in seen] + [m for m in seen if m not in METHOD_COLOURS]
    extra = iter(EXTRA_COLOURS * (1 + len(names) // len(EXTRA_COLOURS)))
    return names, [METHOD_COLOURS[m] if m in METHOD_COLOURS else next(extra) for m in names]

#: The book's one verdict palette: green for a gain (or a claim that holds), red for a loss (or
#: one that does not), grey for neither (a change under 5 %, a claim not tested or within the noise).
GAIN, LOSS, NEUTRAL = "#1a9641", "#d7191c", "#888888"


def setup() -> None:
    """Configure Altair for the book: SVG rendering, no row limit, HTML output.

    The HTML output loads vega from a CDN unless ``window.VEGA_DEBUG`` already names the
    versions; the book's ``_static/vega-bundle.js`` sets it (:func:`semalign.book.write_vega_bundle`).
    """
    import altair as alt

    alt.data_transformers.disable_max_rows()
    alt.renderers.enable("html")
    alt.renderers.set_embed_options(renderer="svg", actions={"export": True, "source": False,
                                                             "compiled": False, "editor": False})


def check_frame(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ``ValueError`` naming ``what`` if ``frame`` lacks one of ``columns`` or is empty."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: the frame lacks column(s) {missing}; it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{what}: the frame is empty")


def domain_of(value: Any) -> Domain | None:
    """The :class:`~semalign.vocab.Domain` of an encoder's domain; ``None`` for one that is
    neither general nor medical (a multimodal model's)."""
    try:
        return Domain.parse(value)
    except ValueError:
        return None


def is_medical(value: Any) -> bool:
    """True for a medical encoder's domain, stand-ins included (they count as Med in Table 1)."""
    d = domain_of(value)
    return d is not None and d.is_medical


def _recipe_of(name: str) -> Mapping[str, Any] | None:
    """The ``recipe:`` mapping of a registry entry (how a stand-in was fitted), or None."""
    try:
        from semalign.encoders import encoder_specs

        recipe = encoder_specs().get(name, {}).get("recipe")
    except Exception:  # noqa: BLE001 — a name outside the registry (a hub id, a folder) has none
        return None
    return recipe if isinstance(recipe, Mapping) and recipe else None


def format_recipe(recipe: Mapping[str, Any]) -> str:
    """``key: value; key: value`` of a stand-in's recipe (lists joined with commas)."""
    def fmt(v: Any) -> str:
        return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return "; ".join(f"{k.replace('_', ' ')}: {fmt(v)}" for k, v in recipe.items())


def describe_encoders(domains: Mapping[str, str], recipes: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Markdown list of encoders with their domain; stand-ins flagged so no reader misses them,
    each with its recipe (base model, data, objective, steps, seed: the registry entry's
    ``recipe:``, or ``recipes[name]``) next to its name."""
    lines = []
    for name, dom in domains.items():
        d = domain_of(dom)
        recipe = (recipes or {}).get(name) or _recipe_of(name)
        if (d is not None and d.is_standin) or "stand-in" in str(dom):
            line = f"- **{name}** (*{dom}* — fitted in this project, not a real medical model)"
        else:
            line = f"- **{name}** ({dom})"
        if recipe:
            line += f". Recipe: {format_recipe(recipe)}"
        lines.append(line)
    return "Encoders:\n\n" + "\n".join(lines)


def glue_numbers(prefix: str, numbers: Mapping[str, Any]) -> None:
    """``myst_nb.glue(f"{prefix}_{key}", value, display=False)`` for each number, so the prose can
    say ``{glue:text}`<prefix>_<key>:.3f```. Values are ints, floats or strings; numpy scalars
    are turned into Python ones first (myst-nb parses the glued repr back, and numpy 2 writes
    ``np.float64(0.5)``)."""
    from myst_nb import glue

    for key, value in numbers.items():
        value = value.item() if hasattr(value, "item") else value
        if not isinstance(value, (int, float, str)):
            raise TypeError(f"glue_numbers: {prefix}_{key} is a {type(value).__name__}; give an int, float or str")
        glue(f"{prefix}_{key}", value, display=False)
