"""The known-structure synthetic face benchmark: a procedural face renderer driven by a
structural causal model (SCM) whose graph is written out beside the data.

Why: faithfulness metrics need a ground truth. Here every action unit (AU) is a real, visible,
localised change drawn at its anatomical place, the AUs are generated from the emotion (and a
pain process) by a known signed graph, and a background-hue *shortcut* can be planted, so a
model that looks at the right AUs and one that reads the background can be told apart.

The renderer
------------
:func:`render_face` draws a frontal face (a subject's :class:`Identity`) with 19 AUs at
intensities 0-5 (``SYNTH_AUS``: AU1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25,
26, 43), each a displacement or mark whose size grows with the intensity, and nothing at all at
intensity 0: brows lift at the inner (AU1) or outer (AU2) end with forehead lines, or drop and knit
with glabella lines (AU4); the upper lid rises (AU5); cheeks rise with crow's-feet and an
infraorbital furrow (AU6); lower lids tighten (AU7); the nose bridge wrinkles and the wings rise
(AU9); the upper lip rises showing teeth, deepening the nasolabial folds (AU10); lip corners pull
up and out (AU12) or down (AU15); dimples form beside the corners (AU14); the lower lip is pulled
down showing lower teeth (AU16); the chin boss rises and puckers (AU17); the lips stretch wide
(AU20), narrow and thin (AU23) or press with bulging skin (AU24); the lips part (AU25); the jaw
drops, lengthening the lower face (AU26); the eyes close (AU43, binary as in FACS/UNBC coding:
intensities above 1 draw the same closed eye). Nuisances (:class:`Nuisance`): in-plane rotation,
scale, translation, a linear lighting gradient, pixel noise and the background colour. Two
styles: ``a`` (flat cartoon, dark outlines) and ``b`` (a domain shift for transfer tests: no
outlines, radial shading, heavier feature lines, larger eyes, smaller mouth, rounder face, cooler
skin, paler backgrounds) — same SCM, same labels for the same seed.

**Renderer versions** (:data:`RENDERERS`; ``SynthConfig.renderer``, ``--renderer``; default
:data:`RENDERER`, 1). Renderer 2 parts the lips only under AU25 (FACS: AU26 alone is a jaw drop with
the lips together, and carries the closed mouth down) and draws AU14's dimples as visible shadows;
everything else is drawn as by renderer 1. ``config.json`` records the renderer, and a folder is
always redrawn by the one that drew it (one that names none is renderer 1).

Faces are drawn at twice the output size and reduced 2× (anti-aliasing). Drawing is PIL
polygons and lines; a 112×112 face takes about 1.5 ms on one core.

**AU region masks.** For every image the benchmark stores, per AU, a binary mask at 1/4 of the
image side (``MASK_STRIDE``) of the area that AU's drawing can change on this face at this pose
(at any intensity up to 5, padded by the line width and the cell size). The masks are stored for
every AU, active or not: "where AU k is drawn" for an image is ``masks[k]`` where
``au_intensity[k] > 0``. On disk they are bit-packed along the AU axis: ``au_masks`` holds the
bytes of ``np.packbits(mask, axis=0)`` for a bool ``[K, S/4, S/4]`` array (``ceil(K/8)·(S/4)²``
bytes, 2,352 at 112×112); :func:`unpack_masks` inverts it.

**Interventions in pixels.** Every image can be drawn again from its scene with one thing changed
(:func:`render_intervention`): do(AU_k = v) with everything else held — the pixels that change lie
inside AU k's mask — or one nuisance changed (:data:`NUISANCE_CHANGES`: background hue, identity,
pose, light); :func:`render_counterfactual` sets the background to a given class's hue. The pixel
audit (:mod:`facr.audit.pixel`) is built on them.

The structural causal model
---------------------------
Variables per image (``rng`` streams are keyed by the seed, so the same seed gives the same
images and labels, whatever the number of worker processes)::

    subject s ──> identity (face shape, skin tone, hair, feature positions), expressivity e_s,
                  per-AU base-rate multipliers m_sk, pain proneness r_s
    emotion y ~ emotion_prior                       (independent of s)
    pain  L   ~ r_s · U(0.2, 1) (0 otherwise)       (independent of y)
    AU_k  = max(base_k, proto_k(y), pain_k(L))      then inhibition, then co-activation
    x     = render(identity_s, AU, nuisances, background hue(cue))

* **Emotion → AU, excitatory** (``EMFACS_PROTOTYPES``): each prototype AU of y is present with
  probability ``p_prototype`` (0.85; so a prototype AU is sometimes missing) at intensity
  round(N(3.2·e_s, 1)) clipped to 1-5.
* **Emotion → AU, inhibitory** (``INHIBITIONS``): happiness suppresses AU4 and AU15 (a smile
  antagonises brow lowering and lip-corner depression), sadness and anger suppress AU12, surprise
  suppresses AU4 (raised brows cannot be lowered). An inhibited AU is present with probability
  ``p_inhibited`` (0.01) whatever its other causes. These AUs get twice the base rate, so the
  inhibition is visible against the neutral face.
* **Base rates**: every AU appears with probability ``base_rate`` (0.08) × m_sk at intensity 1-3
  (AU43 at 1): spontaneous activity that no class causes.
* **AU → AU co-activation** (``CO_ACTIVATION``, applied after the above, sources never targets):
  AU1→AU2, AU4→AU7, AU9→AU10, AU17→AU24, AU26→AU25 with probabilities 0.25-0.5 and the target at
  about 0.7 of the source's intensity. Modest on purpose: the class→AU edges stay recoverable.
* **Pain** (choice made so that both tasks are usable): a per-subject process independent of the
  emotion. Subject s is in pain on a fraction r_s ~ pain_rate·U(0.5, 1.5) of its images, with
  level L ~ U(0.2, 1); ``never_pain_fraction`` of the subjects (at least one, like UNBC's subject
  101) have r_s = 0 and also no spontaneous PSPI AUs, so all their PSPIs are 0 on neutral faces.
  Pain turns on the PSPI AUs: AU4, one or both of AU6/AU7, one or both of AU9/AU10, and AU43, each
  with a probability and an intensity growing with L (at least one always). **PSPI is computed
  by** :func:`facr.au.pspi` **from the rendered intensities** and the binary pain label is
  PSPI > 0 (the UNBC protocol), so PSPI can be > 0 without the pain process (an angry AU4 counts,
  as in UNBC) and the latent level is stored apart (``pain_level``). For the multi-class emotion
  task the label is ``emotion``; for a UNBC-like binary pain set, make most faces neutral with
  ``emotion_prior={"neutral": 1}`` (CLI ``--emotion-prior neutral=1``).
* **Shortcut**: each class (the emotions, or no_pain/pain with ``shortcut_target="pain"``) owns a
  background hue, class j at hue j/C. In train *and val* the background takes the image's class
  hue with probability ``shortcut`` (RATE), else the hue of a uniformly random class; in test the
  hue is always a uniformly random class's. So the cue agrees with the class with probability
  RATE + (1 - RATE)/C in train/val and 1/C (chance) in test; a model that learnt the hue fails
  on test. Each image stores its ``cue`` (the class whose hue it shows), ``cue_hue`` and
  ``cue_agrees``. RATE = 0 (default) plants no shortcut.
* **Splits**: subject-disjoint train/val/test (``split_fractions``, default 0.7/0.15/0.15 of the
  subjects, at least one each); image i belongs to subject i mod K.

The true graph
--------------
:func:`true_graph` writes the generating structure as a facr graph (provenance ``truth``) in the
paper's direction AU → class: Pa(c) holds the AUs the SCM's class c moves, with sign +1 for
prototype AUs and −1 for inhibited AUs; ``neutral`` has no parents; ``pain`` (when the pain
process is on) has the PSPI parents AU4, AU6, AU7, AU9, AU10, AU43; AU → AU edges are the
co-activations (weight = their probability).

On disk
-------
:func:`write_synth` writes a folder that ``datasets.load_from_disk`` reads as a ``DatasetDict``
(train / val / test) plus ``graph.json`` (the true graph) and ``config.json`` (the
:class:`SynthConfig`, the AU and class orders, the subjects and their splits, the SCM tables).
Columns: ``image`` (PNG), ``index``, ``subject``, ``frame``, ``split``, ``emotion``, ``label``
(ClassLabel over the emotions), ``au_presence`` (int8 × K), ``au_intensity`` (float32 × K, 0-5),
``pspi``, ``pain`` (PSPI > 0), ``pain_level``, ``cue``, ``cue_hue``, ``cue_agrees``,
``unilateral`` (contempt's one-sided AU12/AU14), ``pose`` (angle°, scale, dx, dy) and
``au_masks`` (packed bytes, above). The AU order is ``SYNTH_AUS``, also in ``config.json`` and in
each split's ``info.description`` as ``aus=AU1,AU2,...``. ``facr.data.formats.synth.load`` reads
the folder as :class:`~facr.data.records.FaceRecord` objects.

Example::

    from facr.data.synth import SynthConfig, write_synth
    write_synth("data/synth", SynthConfig(n=5000, seed=0, shortcut=0.9))
    # or: facr data synth --out data/synth --n 5000 --seed 0 --shortcut 0.9

Layout
------
:mod:`~facr.data.synth.scm` (the SCM, :class:`SynthConfig`, :class:`Scene`, :func:`true_graph`),
:mod:`~facr.data.synth.geometry` (styles and face geometry), :mod:`~facr.data.synth.render` (the
renderer), :mod:`~facr.data.synth.masks` (AU region masks), :mod:`~facr.data.synth.interventions`
(re-rendering under interventions), :mod:`~facr.data.synth.writer` (worker pool, PNG, the folder on
disk) and :mod:`~facr.data.synth.preview`; every public name is importable from here.
"""

from __future__ import annotations

from facr.data.synth.interventions import (
    NUISANCE_CHANGES,
    POSE_SHIFT_DEG,
    POSE_SHIFT_DX,
    face_masks,
    render_counterfactual,
    render_intervention,
)
from facr.data.synth.masks import record_masks, region_masks, unpack_masks
from facr.data.synth.preview import preview_grid
from facr.data.synth.render import render_face
from facr.data.synth.scm import (
    CO_ACTIVATION,
    EMOTIONS,
    INHIBITIONS,
    MASK_STRIDE,
    MAX_N,
    MAX_SIZE,
    RENDERER,
    RENDERERS,
    STYLES,
    SYNTH_AU_NUMBERS,
    SYNTH_AUS,
    Identity,
    Nuisance,
    Scene,
    SynthConfig,
    random_identity,
    sample_scene,
    true_graph,
)
from facr.data.synth.writer import SynthBatch, dataset_config, generate, read_config, read_scene, write_synth

__all__ = [
    "CO_ACTIVATION",
    "EMOTIONS",
    "INHIBITIONS",
    "Identity",
    "MASK_STRIDE",
    "MAX_N",
    "MAX_SIZE",
    "NUISANCE_CHANGES",
    "Nuisance",
    "POSE_SHIFT_DEG",
    "POSE_SHIFT_DX",
    "RENDERER",
    "RENDERERS",
    "STYLES",
    "SYNTH_AUS",
    "SYNTH_AU_NUMBERS",
    "Scene",
    "SynthBatch",
    "SynthConfig",
    "dataset_config",
    "face_masks",
    "generate",
    "preview_grid",
    "random_identity",
    "read_config",
    "read_scene",
    "record_masks",
    "region_masks",
    "render_counterfactual",
    "render_face",
    "render_intervention",
    "sample_scene",
    "true_graph",
    "unpack_masks",
    "write_synth",
]
