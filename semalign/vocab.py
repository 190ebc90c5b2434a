"""The paper's vocabulary: modality, domain and finding, each spelled once.

Every module that needs to know whether an encoder is *general* or *medical*, whether a task is
text or vision, or which finding a task is about asks these types instead of comparing or
searching strings. ``Modality`` and ``Domain`` are ``StrEnum``\\s, so a member *is* its string
(``Domain.MEDICAL == "medical"``, CSV files and YAML keep the plain words) and old frames read
back from disk compare equal to the members.

>>> Domain.parse("medical (stand-in)").category
'Med'
>>> Modality.parse("vision") is Modality.IMAGE
True
>>> finding("Lung Opacity").key
'lung-opacity'
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Modality", "Domain", "Finding", "FINDINGS", "ZEROSHOT_FINDINGS", "finding"]


class Modality(StrEnum):
    """What an encoder reads and a task is made of."""

    TEXT = "text"
    IMAGE = "image"

    @property
    def label(self) -> str:
        """The paper's word for it in Table 1 and Fig. 3: "text" or "vision"."""
        return "text" if self is Modality.TEXT else "vision"

    @classmethod
    def parse(cls, value: "str | Modality") -> "Modality":
        """``"text"`` -> TEXT; ``"image"`` or ``"vision"`` -> IMAGE; anything else a ValueError."""
        v = str(value).strip().lower()
        if v == "vision":
            return cls.IMAGE
        try:
            return cls(v)
        except ValueError:
            raise ValueError(f"unknown modality {value!r}: use 'text' or 'image' (or 'vision')") from None


class Domain(StrEnum):
    """Where an encoder's knowledge comes from (paper Sec. 4: *general* or *medical*).

    ``MEDICAL_STANDIN`` is an offline analog fitted in this project, never one of the paper's
    medical models: it counts as medical in Table 1 (``category`` "Med") and is named as a
    stand-in wherever it is shown.
    """

    GENERAL = "general"
    MEDICAL = "medical"
    MEDICAL_STANDIN = "medical (stand-in)"

    @property
    def is_medical(self) -> bool:
        return self is not Domain.GENERAL

    @property
    def is_standin(self) -> bool:
        return self is Domain.MEDICAL_STANDIN

    @property
    def category(self) -> str:
        """Table 1's short name: "Gen" or "Med"."""
        return "Med" if self.is_medical else "Gen"

    @classmethod
    def parse(cls, value: "str | Domain") -> "Domain":
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            known = ", ".join(repr(d.value) for d in cls)
            raise ValueError(f"unknown domain {value!r}: use one of {known}") from None


@dataclass(frozen=True)
class Finding:
    """A radiological finding a task or a prompt set is about.

    ``key`` is the spelling used in task names, prompt files and result frames
    (``"lung-opacity"``); ``title`` the human one; ``synthcxr`` the SynthCXR generator's finding
    that plays its role offline (``None`` if the generator has none).
    """

    key: str
    title: str
    synthcxr: str | None = None


#: The findings of the paper's vision tasks: pneumonia (RSNA's role), then the six VinDr-CXR
#: findings of Sec. 4 in the paper's order. These are the findings of Fig. 4.
ZEROSHOT_FINDINGS: tuple[Finding, ...] = (
    Finding("pneumonia", "Pneumonia", "pneumonia"),
    Finding("aortic-enlargement", "Aortic enlargement", "aortic_enlargement"),
    Finding("cardiomegaly", "Cardiomegaly", "cardiomegaly"),
    Finding("lung-opacity", "Lung opacity", "lung_opacity"),
    Finding("pleural-thickening", "Pleural thickening", "pleural_thickening"),
    Finding("pulmonary-fibrosis", "Pulmonary fibrosis", "pulmonary_fibrosis"),
    Finding("tuberculosis", "Tuberculosis", "tuberculosis"),
)
FINDINGS: dict[str, Finding] = {f.key: f for f in ZEROSHOT_FINDINGS}


def finding(name: "str | Finding") -> Finding:
    """The :class:`Finding` named ``name`` (its key, title or SynthCXR name, any case/separator)."""
    if isinstance(name, Finding):
        return name
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    if key in FINDINGS:
        return FINDINGS[key]
    raise KeyError(f"unknown finding {name!r}; known: {', '.join(FINDINGS)}")
