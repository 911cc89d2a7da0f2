"""The benchmark's structural causal model: the AU vocabulary and SCM tables, a subject's
:class:`Identity`, the :class:`Nuisance` of an image, :class:`SynthConfig`, the sampled
:class:`Scene` and the :func:`true_graph` it was drawn from (see :mod:`facr.data.synth`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from facr import au as au_vocab

SYNTH_AU_NUMBERS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26, 43)
SYNTH_AUS: tuple[str, ...] = tuple(f"AU{n}" for n in SYNTH_AU_NUMBERS)
"""The AUs the renderer draws, in the benchmark's fixed order (the order of every AU vector)."""

EMOTIONS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust")
"""The emotion classes (``contempt`` is added last with ``SynthConfig(contempt=True)``)."""

INHIBITIONS: dict[str, tuple[int, ...]] = {
    "happiness": (4, 15),  # a smile antagonises brow lowering and lip-corner depression
    "sadness": (12,),      # the sad face does not smile
}
"""Inhibitory emotion → AU edges (s = −1): the AU is present with probability ``p_inhibited``."""

CO_ACTIVATION: tuple[tuple[int, int, float], ...] = (
    (1, 2, 0.35),    # the frontalis lifts inner and outer brow together
    (4, 7, 0.25),    # brow lowering comes with lid tightening
    (9, 10, 0.35),   # the nose wrinkler lifts the upper lip
    (23, 24, 0.30),  # tightened lips are pressed too
    (26, 25, 0.50),  # a dropped jaw parts the lips
)
"""AU → AU co-activation edges ``(source, target, probability)``; sources are never targets."""

# Base-rate multipliers: inhibited AUs get a base rate worth suppressing; the other PSPI AUs are
# rarer spontaneously, so that on a neutral set PSPI > 0 mostly means the pain process.
_BASE_MULT = {4: 1.5, 12: 2.5, 15: 2.5, 6: 0.25, 7: 0.25, 9: 0.25, 10: 0.25, 43: 0.25}
_PSPI = (4, 6, 7, 9, 10, 43)

_K = len(SYNTH_AU_NUMBERS)
_IDX = {n: k for k, n in enumerate(SYNTH_AU_NUMBERS)}
STYLES = ("a", "b")
RENDERERS = (1, 2)
"""Renderer versions. A benchmark folder records the one that drew it and is redrawn by it (interventions).
Renderer 2 (2026-12-01) parts the lips only under AU25: AU26 alone drops the jaw and carries the closed mouth
down, as FACS codes a jaw drop with the lips together. It draws AU14's dimples as visible shadows beside
corners pulled further in. Renderer 1 draws the lips apart under AU26 alone too, so do(AU25 = 0) leaves them
apart where AU26 is present, and AU14 as a hairline under a pixel wide at 112 px."""
RENDERER = 1
"""The default: renderer 1, which drew every benchmark behind the committed figures (docs/, audits/results/)."""
MASK_STRIDE = 4
"""AU region masks are stored at 1/4 of the image side (one mask cell = 4×4 pixels)."""
# Bounds of SynthConfig: a 40000-px face would need gigabytes per image, and the scene arrays are
# drawn for all n images at once before any pixel (the benchmark's own runs use 112 px, 2000 images).
MAX_SIZE = 1024
MAX_N = 1_000_000


def check_renderer(renderer) -> None:
    """``ValueError`` unless ``renderer`` is one of :data:`RENDERERS`."""
    if isinstance(renderer, bool) or renderer not in RENDERERS:
        raise ValueError(f"renderer must be one of {', '.join(map(str, RENDERERS))}, got {renderer!r}")


# ============================================================== identity and nuisance
@dataclass(frozen=True)
class Identity:
    """How one synthetic subject looks: face shape, colours and feature positions.

    Lengths are in face units: ``u`` across (1 = the face's half-width, negative = image left)
    and ``v`` down (0 = face centre, 1 = chin, −1 = crown); ``face_w``/``face_h`` are the
    half-sizes in canvas units (canvas side = 1). Colours are RGB in [0, 1]. ``hair_style``:
    0 short, 1 long, 2 side fringe, 3 cropped.
    """

    face_w: float = 0.39
    face_h: float = 0.45
    jaw: float = 0.25
    skin: tuple[float, float, float] = (0.93, 0.76, 0.62)
    hair: tuple[float, float, float] = (0.25, 0.16, 0.10)
    iris: tuple[float, float, float] = (0.30, 0.45, 0.65)
    lips: tuple[float, float, float] = (0.78, 0.40, 0.40)
    shirt: tuple[float, float, float] = (0.30, 0.35, 0.55)
    hair_style: int = 0
    eye_x: float = 0.42
    eye_y: float = -0.06
    eye_w: float = 0.19
    eye_h: float = 0.085
    brow_gap: float = 0.16
    brow_t: float = 0.05
    brow_arch: float = 0.035
    nose_y: float = 0.30
    nose_w: float = 0.15
    mouth_y: float = 0.56
    mouth_w: float = 0.30
    lip_up: float = 0.050
    lip_lo: float = 0.065


_HAIRS = np.array([[0.10, 0.08, 0.07], [0.28, 0.18, 0.11], [0.52, 0.36, 0.20], [0.80, 0.66, 0.40],
                   [0.58, 0.58, 0.58], [0.50, 0.20, 0.10]])
_IRISES = np.array([[0.30, 0.45, 0.65], [0.35, 0.25, 0.15], [0.30, 0.50, 0.30], [0.20, 0.15, 0.10]])


def random_identity(rng: np.random.Generator) -> Identity:
    """A random :class:`Identity`: face shape, skin tone, hair, feature positions and sizes."""
    u = rng.uniform
    tone = u(0.0, 1.0)
    light, dark = np.array([0.97, 0.83, 0.71]), np.array([0.42, 0.28, 0.20])
    skin = np.clip(light * (1 - tone) + dark * tone + rng.normal(0, 0.015, 3), 0, 1)
    lips = np.clip(skin * np.array([0.86, 0.56, 0.56]) + np.array([0.06, 0.0, 0.02]), 0, 1)
    return Identity(
        face_w=u(0.37, 0.41), face_h=u(0.43, 0.47), jaw=u(0.10, 0.40),
        skin=tuple(float(c) for c in skin),
        hair=tuple(float(c) for c in np.clip(_HAIRS[rng.integers(len(_HAIRS))] + rng.normal(0, 0.02, 3), 0, 1)),
        iris=tuple(float(c) for c in _IRISES[rng.integers(len(_IRISES))]),
        lips=tuple(float(c) for c in lips), shirt=tuple(float(c) for c in u(0.15, 0.85, 3)),
        hair_style=int(rng.integers(4)),
        eye_x=u(0.39, 0.45), eye_y=u(-0.10, -0.03), eye_w=u(0.17, 0.21), eye_h=u(0.075, 0.095),
        brow_gap=u(0.15, 0.19), brow_t=u(0.045, 0.065), brow_arch=u(0.02, 0.05),
        nose_y=u(0.27, 0.33), nose_w=u(0.13, 0.17),
        mouth_y=u(0.54, 0.60), mouth_w=u(0.27, 0.34), lip_up=u(0.040, 0.058), lip_lo=u(0.055, 0.072),
    )


@dataclass(frozen=True)
class Nuisance:
    """What varies per image but is not an AU: pose, scale, position, light, noise, background.

    ``angle`` in degrees (in-plane rotation), ``scale`` about the face centre, ``dx``/``dy`` in
    canvas units, a linear lighting gradient of strength ``light`` along ``light_dir`` (radians),
    Gaussian pixel noise of s.d. ``noise`` grey levels drawn from ``noise_seed``, and the
    background hue ``bg_hue`` in [0, 1) (the shortcut cue) at brightness ``bg_value``.
    """

    angle: float = 0.0
    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    light: float = 0.0
    light_dir: float = 0.0
    noise: float = 0.0
    noise_seed: int = 0
    bg_hue: float = 0.55
    bg_value: float = 0.85


@dataclass
class SynthConfig:
    """Settings of the synthetic benchmark; validated in ``__post_init__`` (``ValueError`` naming the field).

    ``n`` images of ``size``×``size`` from ``subjects`` subjects in ``style`` a or b; ``shortcut``
    is RATE in [0, 1] (see the module docstring) on ``shortcut_target`` ``emotion`` or ``pain``;
    ``emotion_prior`` maps emotions to weights (None: uniform; unlisted emotions get 0);
    ``contempt`` adds the eighth emotion; ``pain=False`` switches the pain process off (and
    leaves ``pain`` out of the true graph). The remaining fields are the SCM's knobs.
    """

    # metadata: the flags of `facr data synth` (facr.flags)
    n: int = field(default=2000, metadata={"help": "number of images"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    size: int = field(default=112, metadata={"help": f"image side in pixels, a multiple of {MASK_STRIDE}"})
    style: str = field(default="a", metadata={"choices": STYLES, "help": "rendering style / domain"})
    renderer: int = field(default=RENDERER, metadata={
        "choices": RENDERERS, "help": "renderer version: 2 parts the lips only under AU25 (FACS) and draws AU14's "
                                      "dimples visibly; 1 draws them apart under AU26 alone too (docs/data.md)"})
    subjects: int = field(default=25, metadata={"help": "number of subjects"})
    shortcut: float = field(default=0.0, metadata={
        "metavar": "RATE", "help": "probability that the background hue shows the image's class in train/val "
                                   "(test: never more than chance); 0 = no shortcut"})
    shortcut_target: str = field(default="emotion", metadata={
        "choices": ("emotion", "pain"), "help": "the label the shortcut tracks"})
    contempt: bool = field(default=False, metadata={"help": "add contempt as an eighth emotion"})
    pain: bool = field(default=True, metadata={"flag": "--no-pain", "help": "switch the pain process off"})
    emotion_prior: dict[str, float] | None = None
    p_prototype: float = 0.85
    base_rate: float = 0.08
    p_inhibited: float = 0.01
    pain_rate: float = 0.1
    never_pain_fraction: float = 0.1
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    max_angle: float = 8.0
    noise: float = 3.0

    def __post_init__(self):
        for name in ("n", "seed", "size", "subjects"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if not 1 <= self.n <= MAX_N:
            raise ValueError(f"n must be in [1, {MAX_N}], got {self.n}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {self.style!r}")
        check_renderer(self.renderer)
        if not 32 <= self.size <= MAX_SIZE or self.size % MASK_STRIDE:
            raise ValueError(f"size must be a multiple of {MASK_STRIDE} in [32, {MAX_SIZE}], got {self.size}")
        if self.subjects < 3:
            raise ValueError(f"subjects must be >= 3 (one per split at least), got {self.subjects}")
        if self.n < self.subjects:
            raise ValueError(f"n must be >= subjects (every subject needs an image): n={self.n}, "
                             f"subjects={self.subjects}")
        for name in ("shortcut", "p_prototype", "base_rate", "p_inhibited", "pain_rate", "never_pain_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if self.shortcut_target not in ("emotion", "pain"):
            raise ValueError(f"shortcut_target must be 'emotion' or 'pain', got {self.shortcut_target!r}")
        if self.shortcut_target == "pain" and not self.pain:
            raise ValueError("shortcut_target 'pain' needs pain=True")
        fr = tuple(float(f) for f in self.split_fractions)
        if len(fr) != 3 or any(f <= 0 for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
            raise ValueError("split_fractions must be three positive numbers summing to 1, "
                             f"got {self.split_fractions!r}")
        self.split_fractions = fr
        if not 0.0 <= self.max_angle <= 45.0:
            raise ValueError(f"max_angle must be in [0, 45] degrees, got {self.max_angle}")
        if not 0.0 <= self.noise <= 50.0:
            raise ValueError(f"noise must be in [0, 50] grey levels, got {self.noise}")
        if self.emotion_prior is not None:
            prior = {str(k): float(v) for k, v in dict(self.emotion_prior).items()}
            unknown = sorted(set(prior) - set(self.emotions))
            if unknown:
                raise ValueError(f"emotion_prior: unknown emotion(s) {', '.join(unknown)} "
                                 f"(classes: {', '.join(self.emotions)})")
            if any(not math.isfinite(v) or v < 0 for v in prior.values()) or sum(prior.values()) <= 0:
                raise ValueError(f"emotion_prior: weights must be >= 0 with a positive sum, got {prior}")
            self.emotion_prior = prior

    @property
    def emotions(self) -> list[str]:
        """The emotion classes, in label order."""
        return list(EMOTIONS) + (["contempt"] if self.contempt else [])

    @property
    def shortcut_classes(self) -> list[str]:
        """The classes that own a background hue (class j shows hue j / C)."""
        return self.emotions if self.shortcut_target == "emotion" else ["no_pain", "pain"]

    def prior(self) -> np.ndarray:
        """P(emotion) in ``emotions`` order."""
        if self.emotion_prior is None:
            return np.full(len(self.emotions), 1.0 / len(self.emotions))
        p = np.array([self.emotion_prior.get(e, 0.0) for e in self.emotions])
        return p / p.sum()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["split_fractions"] = list(self.split_fractions)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SynthConfig":
        """A config from plain data (a YAML section, a dataset's ``synth_config.json``), every field's
        type checked (:func:`facr.config.from_dict`); problems are ``ValueError`` naming the field."""
        from facr.config import ConfigError, from_dict

        try:
            return from_dict(cls, dict(d))
        except ConfigError as exc:
            raise ValueError(exc.message) from None

    @classmethod
    def from_stored(cls, d: Mapping[str, Any]) -> "SynthConfig":
        """The config a benchmark folder was drawn with (``config.json``'s ``config``): as :meth:`from_dict`,
        but a folder that names no renderer was drawn before renderers had versions, by renderer 1."""
        return cls.from_dict({"renderer": 1, **dict(d)})


@dataclass
class Scene:
    """Everything the SCM draws for a dataset, before any pixel: labels, identities, nuisances.

    Arrays have one row per image (index i); ``intensity`` is ``[n, K]`` in ``SYNTH_AUS`` order.
    """

    config: SynthConfig
    identities: list[Identity]
    subject_names: list[str]
    subject_split: list[str]
    never_pain: list[bool]
    subject: np.ndarray
    frame: np.ndarray
    emotion: np.ndarray
    intensity: np.ndarray
    pspi: np.ndarray
    pain_level: np.ndarray
    cue: np.ndarray
    unilateral: np.ndarray
    nuisance: np.ndarray  # [n, 10]: the Nuisance fields in declaration order

    @property
    def n(self) -> int:
        return len(self.subject)

    @property
    def split(self) -> np.ndarray:
        return np.asarray(self.subject_split, dtype=object)[self.subject]

    @property
    def presence(self) -> np.ndarray:
        return (self.intensity > 0).astype(np.int8)

    @property
    def shortcut_class(self) -> np.ndarray:
        """Per image, the index (in ``config.shortcut_classes``) of the class the cue should track."""
        return self.emotion if self.config.shortcut_target == "emotion" else (self.pspi > 0).astype(np.int64)


def _subject_splits(k: int, fractions, rng: np.random.Generator) -> list[str]:
    n_val = max(1, int(round(k * fractions[1])))
    n_test = max(1, int(round(k * fractions[2])))
    n_train = k - n_val - n_test
    if n_train < 1:
        n_train, n_val = 1, k - 1 - n_test
    order = rng.permutation(k)
    split = [""] * k
    for rank, s in enumerate(order):
        split[s] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return split


def sample_scene(config: SynthConfig) -> Scene:
    """Draw the SCM's variables for ``config`` (vectorised; no rendering). Same seed, same scene."""
    cfg = config
    n, K, S = cfg.n, _K, cfg.subjects
    r_subj = np.random.default_rng([cfg.seed, 1])
    identities = [random_identity(r_subj) for _ in range(S)]
    expressivity = r_subj.uniform(0.75, 1.15, S)
    rate_mult = np.clip(np.exp(r_subj.normal(0.0, 0.35, (S, K))), 0.5, 2.0)
    n_never = max(1, int(round(S * cfg.never_pain_fraction))) if cfg.pain else 0
    never = np.zeros(S, dtype=bool)
    never[r_subj.choice(S, n_never, replace=False)] = True
    pain_rate = (np.where(never, 0.0, np.clip(cfg.pain_rate * r_subj.uniform(0.5, 1.5, S), 0.0, 0.9)) if cfg.pain
                 else np.zeros(S))
    split_of = _subject_splits(S, cfg.split_fractions, r_subj)
    width = len(str(S))
    names = [f"S{j + 1:0{width}d}" for j in range(S)]

    r = np.random.default_rng([cfg.seed, 2])
    subject = np.arange(n) % S
    frame = np.arange(n) // S
    emotions = cfg.emotions
    emotion = r.choice(len(emotions), size=n, p=cfg.prior())

    # spontaneous activity: base rate x the subject's multiplier (never-in-pain subjects: no PSPI AUs)
    base = np.array([cfg.base_rate * _BASE_MULT.get(a, 1.0) for a in SYNTH_AU_NUMBERS])
    p_base = np.clip(base[None, :] * rate_mult[subject], 0.0, 1.0)
    pspi_cols = [_IDX[a] for a in _PSPI]
    p_base[np.ix_(never[subject], pspi_cols)] = 0.0
    on = r.random((n, K)) < p_base
    I = np.where(on, r.integers(1, 4, (n, K)), 0).astype(np.float64)

    # emotion -> AU (excitatory): each prototype AU present with p_prototype
    proto = np.zeros((len(emotions), K), dtype=bool)
    for ci, e in enumerate(emotions):
        for a in _prototypes(e):
            proto[ci, _IDX[a]] = True
    strength = np.clip(np.rint(r.normal(3.2 * expressivity[subject][:, None], 1.0, (n, K))), 1, 5)
    hit = proto[emotion] & (r.random((n, K)) < cfg.p_prototype)
    I = np.where(hit, np.maximum(I, strength), I)

    # pain -> PSPI AUs (independent of the emotion)
    in_pain = r.random(n) < pain_rate[subject]
    level = np.where(in_pain, r.uniform(0.2, 1.0, n), 0.0)
    I = _pain_aus(I, level, r)

    # emotion -| AU (inhibitory): present with p_inhibited whatever else drives it
    for ci, e in enumerate(emotions):
        for a in INHIBITIONS.get(e, ()):
            rows = emotion == ci
            keep = r.random(n) < cfg.p_inhibited
            k = _IDX[a]
            I[rows, k] = np.where(keep[rows], np.maximum(I[rows, k], 1.0), 0.0)

    # AU -> AU co-activation (sources are never targets: one pass suffices)
    for src, dst, p in CO_ACTIVATION:
        ks, kd = _IDX[src], _IDX[dst]
        fire = (I[:, ks] > 0) & (r.random(n) < p)
        I[:, kd] = np.where(fire, np.maximum(I[:, kd], np.clip(np.rint(0.7 * I[:, ks]), 1, 5)), I[:, kd])
    I[:, _IDX[43]] = np.minimum(I[:, _IDX[43]], 1.0)

    pspi = au_vocab.pspi({a: I[:, _IDX[a]] for a in _PSPI})
    pspi = np.asarray(pspi, dtype=np.float64)

    # the shortcut: background hue of the class (train/val, with prob RATE) or of a random class
    n_cls = len(cfg.shortcut_classes)
    target = emotion if cfg.shortcut_target == "emotion" else (pspi > 0).astype(np.int64)
    split = np.asarray(split_of, dtype=object)[subject]
    planted = (split != "test") & (r.random(n) < cfg.shortcut)
    cue = np.where(planted, target, r.integers(0, n_cls, n))

    unilateral = np.zeros(n, dtype=bool)
    if cfg.contempt:
        unilateral = emotion == emotions.index("contempt")

    nz = np.empty((n, 10))
    nz[:, 0] = r.uniform(-cfg.max_angle, cfg.max_angle, n)
    nz[:, 1] = r.uniform(0.93, 1.07, n)
    nz[:, 2] = r.uniform(-0.035, 0.035, n)
    nz[:, 3] = r.uniform(-0.035, 0.035, n)
    nz[:, 4] = r.uniform(0.0, 0.25, n)
    nz[:, 5] = r.uniform(0.0, 2 * np.pi, n)
    nz[:, 6] = cfg.noise * r.uniform(0.5, 1.5, n)
    nz[:, 7] = r.integers(0, 2**31 - 1, n)
    nz[:, 8] = cue / n_cls
    nz[:, 9] = r.uniform(0.72, 0.92, n)
    return Scene(cfg, identities, names, split_of, never.tolist(), subject, frame, emotion, I, pspi, level, cue,
                 unilateral, nz)


def _prototypes(emotion: str) -> tuple[int, ...]:
    from facr.graph.prototypes import EMFACS_PROTOTYPES

    return EMFACS_PROTOTYPES.get(emotion, ())


def _pain_aus(I: np.ndarray, level: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Pain level L in (0, 1] turns on the PSPI AUs, more of them and stronger as L grows."""
    n = len(level)
    pain = level > 0
    amp = lambda: np.clip(np.rint(1 + 4 * level * r.uniform(0.5, 1.0, n)), 1, 5)  # noqa: E731
    u = r.random((n, 6))
    which67 = r.random(n)
    which910 = r.random(n)
    want = {
        4: pain & (u[:, 0] < 0.45 + 0.45 * level),
        6: pain & (u[:, 1] < 0.55 + 0.40 * level) & (which67 < 0.6),
        7: pain & (u[:, 1] < 0.55 + 0.40 * level) & (which67 >= 0.4),
        9: pain & (u[:, 2] < 0.25 + 0.45 * level) & (which910 < 0.6),
        10: pain & (u[:, 2] < 0.25 + 0.45 * level) & (which910 >= 0.4),
        43: pain & (u[:, 3] < 0.35 * level),
    }
    none = pain & ~np.any(np.stack(list(want.values())), axis=0)
    want[7] = want[7] | none  # pain always shows somewhere: the lids tighten
    for a, rows in want.items():
        k = _IDX[a]
        value = np.ones(n) if a == 43 else amp()
        I[:, k] = np.where(rows, np.maximum(I[:, k], value), I[:, k])
    return I


# ================================================================ the true graph
def true_graph(config: SynthConfig | None = None):
    """The SCM's graph as an :class:`~facr.graph.AUGraph` (provenance ``truth``).

    AU → class edges: +1 for each prototype AU of an emotion (weight ``p_prototype``), −1 for
    each inhibited AU (weight 1 − ``p_inhibited``); ``neutral`` has no parents; ``pain`` (when
    the pain process is on) has the PSPI parents. AU → AU edges: the co-activations (weight =
    their probability). Every ``SYNTH_AUS`` AU is a node.
    """
    from facr.graph import AUGraph
    from facr.graph.prototypes import PSPI_FORMULA

    cfg = config or SynthConfig()
    g = AUGraph(f"synth-truth-{cfg.style}", {
        "description": "The generating structure of a facr synthetic benchmark (facr.data.synth).",
        "seed": cfg.seed,
        "p_prototype": cfg.p_prototype,
        "p_inhibited": cfg.p_inhibited,
        "base_rate": cfg.base_rate,
        "pspi_formula": PSPI_FORMULA,
    })
    for e in cfg.emotions:
        g.add_class(e)
    if cfg.pain:
        g.add_class("pain")
    for a in SYNTH_AUS:
        g.add_au(a)
    for e in cfg.emotions:
        for a in _prototypes(e):
            g.add_edge(f"AU{a}", e, 1, cfg.p_prototype, "truth", note="prototype (EMFACS)")
        for a in INHIBITIONS.get(e, ()):
            g.add_edge(f"AU{a}", e, -1, round(1.0 - cfg.p_inhibited, 6), "truth", note="inhibition")
    if cfg.pain:
        for a in _PSPI:
            note = {6: "max(AU6, AU7)", 7: "max(AU6, AU7)", 9: "max(AU9, AU10)", 10: "max(AU9, AU10)"}.get(a, "PSPI")
            g.add_edge(f"AU{a}", "pain", 1, 1.0, "truth", note=note)
    for src, dst, p in CO_ACTIVATION:
        g.add_edge(f"AU{src}", f"AU{dst}", 1, p, "truth", note="co-activation")
    return g
