"""``facr emola stand-in``: an EmoLA-format generations file that is **not** EmoLA's output.

It exists so the EmoLA comparison runs end to end where EmoLA cannot (no GPU, no weights, the
synthetic benchmark), and so the audit has a known answer to be checked against. Every line says
so in ``source``. Its figures are set by its construction, not measured on any MLLM:

* **the emotion answer** is the labelled emotion with probability ``p_correct``, else another of
  ``classes`` drawn uniformly;
* **the AU answer** describes the stated emotion by stereotype, as a plausible-but-unfaithful
  describer would: each AU of the EMFACS prototype of that emotion with probability
  ``p_prototype``, then each AU labelled present on the face with probability ``p_seen``;
  written in the spellings EmoLA uses ("1. AU4 - Brow Lowerer: …", "AU 12 (Lip Corner Puller)",
  "AU06", "the cheek raiser"), so the parser is exercised as on real answers.

The same records, parameters and seed give the same file, byte for byte.
"""

from __future__ import annotations

import numpy as np

from facr import au as au_vocab

STAND_IN_SOURCE = "facr stand-in (stereotype describer): NOT EmoLA output"


def _spell(a: str, style: int, i: int) -> str:
    info = au_vocab.info(a)
    if style == 0:
        return f"{i}. {a} - {info.name}: present."
    if style == 1:
        return f"AU {info.number} ({info.name})"
    if style == 2:
        return f"AU{info.number:02d}"
    return f"the {info.name.lower()}"


def standin_generations(records, root, *, classes: list[str], seed: int = 0, p_correct: float = 0.7,
                        p_prototype: float = 0.8, p_seen: float = 0.4) -> list[dict]:
    """One EmoLA-format line per record (see the module docstring); ``classes``: the emotions a
    wrong answer is drawn from."""
    from facr.external.generations import generation_row, record_key
    from facr.graph import resolve_graph

    for name, p in (("p_correct", p_correct), ("p_prototype", p_prototype), ("p_seen", p_seen)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    emfacs = resolve_graph("emfacs")
    rng = np.random.default_rng(seed)
    source = f"{STAND_IN_SOURCE}; seed {seed}, p_correct {p_correct}, p_prototype {p_prototype}, p_seen {p_seen}"
    rows = []
    for r in records:
        label = r.emotion
        others = [c for c in classes if c != label]
        stated = label if (label is not None and rng.random() < p_correct) or not others else str(rng.choice(others))
        proto = list(emfacs.parents(stated)) if stated in emfacs.classes else []
        named = [a for a in proto if rng.random() < p_prototype]
        named += [a for a in r.active_aus() if a not in named and rng.random() < p_seen]
        style = int(rng.integers(4))
        if named:
            parts = [_spell(a, style, i) for i, a in enumerate(named, 1)]
            output = ("The AUs conveyed by this face are:\n" + "\n".join(parts) if style == 0
                      else "The AUs conveyed by this face are " + ", ".join(parts) + ".")
        else:
            output = "I cannot make out any clear facial action in this image."
        emotion_output = f"The face conveys {stated}." if stated else "The emotion is unclear."
        rows.append(generation_row(record_key(r, root), r, output=output, source=source,
                                   emotion_output=emotion_output))
    return rows
