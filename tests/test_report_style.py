"""report.style: the encoder lines every notebook prints (stand-ins flagged, recipes shown)."""

from semalign.encoders import register_encoder
from semalign.report import style


def test_describe_encoders_flags_standins_and_shows_recipes():
    register_encoder("test-recipe-standin", {"kind": "hf", "id": "x/y", "modality": "text",
                                             "domain": "medical (stand-in)", "dim": 4,
                                             "recipe": {"base": "minilm-l6", "steps": 120, "seed": 0,
                                                        "data": ["Open-i", "train pool"]}})
    md = style.describe_encoders({"minilm-l6": "general", "test-recipe-standin": "medical (stand-in)"})
    lines = md.splitlines()
    assert lines[0] == "Encoders:"
    general = next(line for line in lines if "**minilm-l6**" in line)
    standin = next(line for line in lines if "**test-recipe-standin**" in line)
    assert "not a real medical model" in standin and "not a real medical model" not in general
    assert "Recipe: base: minilm-l6; steps: 120; seed: 0; data: Open-i, train pool" in standin
    assert "Recipe" not in general  # a registry entry without a recipe shows none


def test_describe_encoders_explicit_recipe_and_unknown_name():
    md = style.describe_encoders({"org/not-in-registry": "general"}, recipes={"org/not-in-registry": {"a": 1}})
    assert "- **org/not-in-registry** (general). Recipe: a: 1" in md
    assert "Recipe" not in style.describe_encoders({"org/other": "general"})
