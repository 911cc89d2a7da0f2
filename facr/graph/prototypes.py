"""The verified structures facr ships: EMFACS emotion prototypes and the PSPI pain composition.

``graphs/emfacs.json`` and ``graphs/pspi.json`` are written from these tables
(``facr graph export``); a test keeps the files and the tables identical.
"""

from __future__ import annotations

from facr import au as au_vocab
from facr.graph.core import AUGraph

EMFACS_REFERENCE = (
    "Friesen, W. V. & Ekman, P. (1983). EMFACS-7: Emotional Facial Action Coding System. "
    "Unpublished manuscript, University of California at San Francisco; prototypes as tabulated "
    "in Ekman, Friesen & Hager (2002), Facial Action Coding System: Investigator's Guide, and "
    "used as emotion criteria in Lucey et al. (2010), The Extended Cohn-Kanade Dataset (CK+), "
    "CVPR Workshops, pp. 94-101."
)
PSPI_REFERENCE = (
    "Prkachin, K. M. & Solomon, P. E. (2008). The structure, reliability and validity of pain "
    "expression: evidence from patients with shoulder pain. Pain 139(2), 267-274."
)

EMFACS_PROTOTYPES: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "sadness": (1, 4, 15),
    "surprise": (1, 2, 5, 26),
    "fear": (1, 2, 4, 5, 7, 20, 26),
    # 4+5+7+23 with the 4+5+7+24 variant; CK+ requires AU23 and AU24 for anger.
    "anger": (4, 5, 7, 23, 24),
    # 9+15+16 with the AU10 variants; CK+ requires AU9 or AU10 for disgust.
    "disgust": (9, 10, 15, 16),
    # R12A+R14A: unilateral lip corner puller and dimpler.
    "contempt": (12, 14),
}
"""Emotion → its EMFACS prototype AUs (all excitatory, s = +1)."""

EMFACS_NOTES = {
    "anger": "EMFACS 4+5+7+23 and 4+5+7+24 (CK+: AU23 and AU24)",
    "disgust": "EMFACS 9+15+16 and AU10 variants (CK+: AU9 or AU10)",
    "contempt": "EMFACS R12A+R14A (unilateral)",
}

PSPI_FORMULA = "PSPI = AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43"


def add_pspi(graph: AUGraph, cls: str = "pain") -> AUGraph:
    """Give ``cls`` exactly the PSPI parents (AU4, AU6, AU7, AU9, AU10, AU43; s = +1, provenance pspi)."""
    graph.add_class(cls)
    for number in au_vocab.PSPI_AUS:
        note = {6: "max(AU6, AU7)", 7: "max(AU6, AU7)", 9: "max(AU9, AU10)", 10: "max(AU9, AU10)"}.get(number)
        graph.add_edge(f"AU{number}", cls, 1, 1.0, "pspi", note=note)
    return graph


def add_emfacs(graph: AUGraph, cls: str) -> AUGraph:
    """Give ``cls`` its EMFACS prototype parents (s = +1, provenance emfacs)."""
    graph.add_class(cls)
    for number in EMFACS_PROTOTYPES[cls]:
        graph.add_edge(f"AU{number}", cls, 1, 1.0, "emfacs", note=EMFACS_NOTES.get(cls))
    return graph


def emfacs_graph() -> AUGraph:
    """EMFACS prototypes for the seven emotions plus pain with the fixed PSPI composition."""
    graph = AUGraph(
        "emfacs",
        {
            "description": "Verified AU->emotion prototypes (EMFACS) and the PSPI pain composition.",
            "references": {"emfacs": EMFACS_REFERENCE, "pspi": PSPI_REFERENCE},
            "pspi_formula": PSPI_FORMULA,
        },
    )
    for cls in EMFACS_PROTOTYPES:
        add_emfacs(graph, cls)
    return add_pspi(graph)


def pspi_graph() -> AUGraph:
    """Pain only, with the fixed PSPI composition."""
    graph = AUGraph(
        "pspi",
        {
            "description": "The Prkachin-Solomon pain composition as a causal graph.",
            "references": {"pspi": PSPI_REFERENCE},
            "pspi_formula": PSPI_FORMULA,
        },
    )
    return add_pspi(graph)


def builtin_graph(name: str) -> AUGraph:
    """A shipped graph by name: ``emfacs`` or ``pspi``."""
    builders = {"emfacs": emfacs_graph, "pspi": pspi_graph}
    if name not in builders:
        raise KeyError(f"no built-in graph {name!r} (choose from {', '.join(builders)})")
    return builders[name]()
