"""Pixel-level interventions: is z faithful to the face?

The latent audit shows that ŷ follows z: do(z_k = 0) moves ŷ as the graph says. It cannot show that
z follows the face — a model can read the background hue into z and still pass it. This module
intervenes on the *image* and reads z and ŷ again (``facr audit --pixel-cf``).

Two ways to intervene in pixels
-------------------------------
* **rerender** (the synthetic benchmark; exact). The benchmark knows every cause of every pixel, so
  a face is drawn again with do(AU_k = 0) — AU k's intensity set to 0, identity, pose, light, noise,
  background and the other AUs held — or with one nuisance changed (background hue, identity, pose,
  light; :data:`facr.data.synth.NUISANCE_CHANGES` documents each change):
  :func:`facr.data.synth.render_intervention`.
* **occlusion** (any image with AU regions; approximate). AU k's region — the benchmark's stored
  masks, or the 68-point landmark ROIs of real faces (:func:`facr.explain.truth.region_masks`) — is
  filled by **inpainting** (``cv2.inpaint``, Telea's method, :func:`occlude`). Why inpainting: a
  flat mean-colour patch draws a new hard-edged shape the model has never seen, so the audit would
  measure the response to a grey box as much as the AU's absence; a blur keeps the region's low
  frequencies (an open mouth stays a dark blob, a lowered brow a dark bar where it was); inpainting
  continues the surrounding skin into the region from its border, so the feature and its shading go
  and no new edge appears. It remains an approximation — it also removes whatever else lies in the
  region (the eye inside AU5's) — and is reported as such (``pixel_cf_method: "occlusion"``).

The figures (:func:`score_pixel`)
---------------------------------
A *pair* (n, k) is a face n and an AU k **active** in it — true intensity > 0 on the benchmark,
z_k ≥ ½ elsewhere — whose intervention changes the image the model sees. Pairs whose intervention
leaves that image unchanged (AU5 under closed eyes) are counted (``pixel_n_invisible``) and left out.

* ``pixel_au_sensitivity``: the share of pairs where z saw the AU (z_k(x) ≥ ½) and stops seeing it
  once it is gone from the pixels (z_k(x^{do(AU_k = 0)}) < ½). An AU z never saw is a miss. It is
  the product of its two parts, reported beside it: ``pixel_au_seen`` (the share of pairs z saw: a
  detection figure) and ``pixel_au_drop_when_seen`` (the share of those that drop: whether z_k reads
  AU k's pixels or infers it from elsewhere, e.g. from an AU that co-occurs with it).
* ``pixel_au_leakage``: mean over pairs of mean_{j ≠ k} |z_j(x^{do}) − z_j(x)|.
* ``pixel_cf_sensitivity`` / ``pixel_cf_invariance``: the paper's figures (the definitions of
  :func:`facr.audit.metrics.pair_hits`, same ε and margin as the latent figures) with the
  intervention in pixels: for the labelled class y, Δ^pix_ky = ŷ_y(x) − ŷ_y(x^{do(AU_k = 0)}); a pair
  with k ∈ Pa(y) is a sensitivity hit when s_ky·Δ > margin, one with k ∉ Pa(y) an invariance hit
  when |Δ| ≤ ε. Only active AUs count (removing an absent AU is no intervention), where the latent
  figures count every parent.
* ``latent_vs_pixel_agreement``: the share of pairs where do(z_k = 0) and do(AU_k = 0 in pixels)
  move the predicted class's logit ŷ_ĉ the same way (a move's direction is its sign, or none when
  |Δ| ≤ ε); ``latent_vs_pixel_prediction_agreement``: the share where both change the prediction or
  both leave it.
* ``nuisance_z_shift`` (rerender only): per nuisance change, the mean over faces of
  mean_k |z_k(x') − z_k(x)|, and ``mean`` of the four; ``nuisance_prediction_change``: the share of
  predictions each change flips.

Black boxes (:func:`occlusion_answers`, :func:`occluded_answer_figures`): a model that only answers
in text (``facr emola generate --model hf-vlm --pixel-cf``) is asked EmoLA's questions again on the
face with each AU region occluded — every AU its answer named, and every AU the labels mark active —
and scored on whether a named AU drops out of its text (``pixel_named_au_drop_rate``) and whether
the emotion it states changes (``pixel_emotion_change_rate``, and ``..._active`` for the labelled
AUs): the first intervention figures of a reasoner that exposes no latent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from facr.au import ACTIVE
from facr.errors import FacrError

METHODS = ("auto", "rerender", "occlusion")
FILL = "inpaint (cv2.inpaint, Telea)"
INPAINT_RADIUS = 3  # pixels of border Telea's method reads around each filled pixel

# (z [B, K], ŷ [B, C]) of uint8 images [B, S, S, 3]: what the figures need of a model.
Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------ occlusion
def resize_mask(mask: np.ndarray, shape_hw: Sequence[int]) -> np.ndarray:
    """A bool mask at any resolution as bool ``shape_hw`` (nearest neighbour: the regions are
    stored at 1/4 of the image side, :data:`facr.explain.truth.STRIDE`)."""
    import cv2

    h, w = int(shape_hw[0]), int(shape_hw[1])
    m = np.asarray(mask, dtype=np.uint8)
    if m.shape == (h, w):
        return m.astype(bool)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def occlude(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (uint8 ``[H, W, 3]``) with the region ``mask`` (bool, any resolution) inpainted
    from its border (Telea's method; see the module docstring for why not a blur or a mean fill)."""
    import cv2

    img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    m = resize_mask(mask, img.shape[:2])
    if not m.any():
        return img.copy()
    return cv2.inpaint(img, m.astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)


def record_regions(record, aus: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(masks bool [K, size/4, size/4], defined bool [K])``: the AU regions of ``record`` in the
    frame of its image resized to ``size`` (the benchmark's masks, else landmark ROIs)."""
    from facr.explain.truth import region_masks

    return region_masks(record, list(aus), size)


# ------------------------------------------------------------------ plans: what to intervene on, and how
@dataclass
class PixelPlan:
    """The faces of a pixel audit and how to intervene on them.

    ``images``: the factual images as the model sees them (uint8 ``[N, S, S, 3]``); ``defined``
    ``[N, K]``: an intervention on AU k exists for face n; ``active`` ``[N, K]``: the AUs the labels
    mark active (None: those z sees, z_k ≥ ½); ``remove(samples, aus)``: the images with do(AU = 0)
    for each (face, AU column) pair; ``nuisance(change, samples)``: the faces with a nuisance changed
    (None where the method has none).
    """

    method: str
    aus: list[str]
    images: np.ndarray
    defined: np.ndarray
    active: np.ndarray | None
    remove: Callable[[np.ndarray, np.ndarray], np.ndarray]
    nuisance: Callable[[str, np.ndarray], np.ndarray] | None = None


def to_model_size(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 images resized to ``size``×``size`` as the dataset feeds them (bilinear; unchanged when
    they already are)."""
    from facr.data.torch_data import load_image

    if images.shape[1:3] == (size, size):
        return images
    return np.stack([load_image(im, size) for im in images]) if len(images) else \
        np.zeros((0, size, size, 3), dtype=np.uint8)


def rerender_plan(scene, index: np.ndarray, aus: Sequence[str], image_size: int) -> PixelPlan:
    """Exact interventions on benchmark images ``index`` of ``scene`` (``sample_scene(config)``):
    do(AU_k = 0) and the nuisance changes by re-rendering (:func:`facr.data.synth.render_intervention`)."""
    from facr.data.synth import SYNTH_AUS, render_intervention

    aus = list(aus)
    index = np.asarray(index, dtype=np.int64)
    col = {a: k for k, a in enumerate(SYNTH_AUS)}
    drawn = np.array([a in col for a in aus], dtype=bool)
    inten = np.zeros((len(index), len(aus)))
    for k, a in enumerate(aus):
        if a in col:
            inten[:, k] = scene.intensity[index, col[a]]

    def rendered(rows: np.ndarray, **change) -> np.ndarray:  # at the model's input size
        return to_model_size(render_intervention(scene, rows, **change), image_size)

    return PixelPlan(
        method="rerender", aus=aus, images=rendered(index),
        defined=np.broadcast_to(drawn, inten.shape).copy(), active=inten > 0,
        remove=lambda s, k: rendered(index[s], au=[aus[j] for j in k], value=0.0),
        nuisance=lambda change, s: rendered(index[s], nuisance=change))


def occlusion_plan(images: np.ndarray, regions: np.ndarray, defined: np.ndarray, aus: Sequence[str]) -> PixelPlan:
    """Approximate interventions by occlusion: do(AU_k = 0) ≈ AU k's region (``regions`` bool
    ``[N, K, h, w]``, any resolution; ``defined`` ``[N, K]``) inpainted (:func:`occlude`); no
    nuisance changes. Active AUs are those z sees."""
    def remove(s: np.ndarray, k: np.ndarray) -> np.ndarray:
        return np.stack([occlude(images[i], regions[i, j]) for i, j in zip(s, k)]) if len(s) else images[:0]

    return PixelPlan(method="occlusion", aus=list(aus), images=images, defined=np.asarray(defined, dtype=bool),
                     active=None, remove=remove)


# ------------------------------------------------------------------ the figures
def _forward_all(forward: Forward, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    zs, ys = [], []
    for start in range(0, len(images), batch_size):
        z, y = forward(images[start:start + batch_size])
        zs.append(np.asarray(z, dtype=np.float64))
        ys.append(np.asarray(y, dtype=np.float64))
    return np.concatenate(zs), np.concatenate(ys)


def _direction(delta: np.ndarray, epsilon: float) -> np.ndarray:
    """−1, 0 or +1 per Δ: no move within ε."""
    return np.where(np.abs(delta) <= epsilon, 0, np.sign(delta)).astype(np.int8)


def _mean(x) -> float | None:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()) if x.size else None


def score_pixel(forward: Forward, plan: PixelPlan, labels: np.ndarray, signs: np.ndarray, *, epsilon: float,
                margin: float | None = None, latent_cf: np.ndarray | None = None, batch_size: int = 128,
                progress: bool = False) -> dict:
    """The pixel figures of the module docstring for ``forward`` on ``plan``'s faces.

    ``labels`` ``[N]``: the class each face is labelled (sensitivity / invariance are about it, as
    the latent figures); ``signs`` ``[K, C]``: the graph's s_kc in ``plan.aus`` order; ``latent_cf``
    ``[N, K, C]``: ŷ^{do(z_k = 0)} of the same faces (None: no latent agreement figures).
    """
    from tqdm.auto import tqdm

    margin = epsilon if margin is None else margin
    signs = np.asarray(signs)
    labels = np.asarray(labels, dtype=np.int64)
    z0, y0 = _forward_all(forward, plan.images, batch_size)
    active = (plan.active if plan.active is not None else z0 >= ACTIVE) & plan.defined
    ps, pk = np.nonzero(active)
    z1 = np.zeros((len(ps), z0.shape[1]))
    y1 = np.zeros((len(ps), y0.shape[1]))
    visible = np.zeros(len(ps), dtype=bool)
    for start in tqdm(range(0, len(ps), batch_size), desc="pixel do()", unit="batch", disable=not progress):
        s, k = ps[start:start + batch_size], pk[start:start + batch_size]
        images = plan.remove(s, k)
        seen = np.any(images != plan.images[s], axis=(1, 2, 3))
        visible[start:start + len(s)] = seen
        if seen.any():
            z, y = forward(images[seen])
            rows = start + np.flatnonzero(seen)
            z1[rows], y1[rows] = z, y
    ps, pk, z1, y1 = ps[visible], pk[visible], z1[visible], y1[visible]
    n_invisible = int((~visible).sum())
    P, K = len(ps), z0.shape[1]

    # what z does: the removed AU's own z_k, and the others'
    zk0, zk1 = z0[ps, pk], z1[np.arange(P), pk]
    seen = zk0 >= ACTIVE
    au_hit = seen & (zk1 < ACTIVE)
    others = np.ones((P, K), dtype=bool)
    others[np.arange(P), pk] = False
    leak = (np.abs(z1 - z0[ps]) * others).sum(axis=1) / max(K - 1, 1)

    # what ŷ does, for the labelled class (the paper's sensitivity / invariance)
    y = labels[ps]
    delta = y0[ps, y] - y1[np.arange(P), y]
    s = signs[pk, y]
    causal = s != 0
    sens_hit = (s * delta > margin) & causal
    inv_hit = (np.abs(delta) <= epsilon) & ~causal

    out = {
        "pixel_cf_method": plan.method,
        "pixel_n_faces": len(plan.images),
        "pixel_n_pairs": P,
        "pixel_n_invisible": n_invisible,
        "pixel_au_sensitivity": _mean(au_hit),
        "pixel_au_seen": _mean(seen),
        "pixel_au_drop_when_seen": _mean(au_hit[seen]),
        "pixel_au_leakage": _mean(leak),
        "pixel_cf_sensitivity": float(sens_hit.sum() / causal.sum()) if causal.any() else None,
        "pixel_cf_invariance": float(inv_hit.sum() / (~causal).sum()) if (~causal).any() else None,
        "pixel_n_sensitivity_pairs": int(causal.sum()),
        "pixel_n_invariance_pairs": int((~causal).sum()),
        "pixel_per_au": {a: {"n_pairs": int((pk == k).sum()), "au_sensitivity": _mean(au_hit[pk == k]),
                             "seen": _mean(seen[pk == k]), "drop_when_seen": _mean(au_hit[(pk == k) & seen]),
                             "leakage": _mean(leak[pk == k])}
                         for k, a in enumerate(plan.aus) if (pk == k).any()},
    }
    if plan.method == "occlusion":
        out["pixel_fill"] = FILL
    if latent_cf is not None:
        # do(z_k = 0) against do(AU_k = 0 in pixels), on the predicted class ĉ
        pred = y0.argmax(axis=1)[ps]
        d_pix = y0[ps, pred] - y1[np.arange(P), pred]
        d_lat = y0[ps, pred] - latent_cf[ps, pk, pred]
        flips_pix = y1.argmax(axis=1) != pred
        flips_lat = latent_cf[ps, pk].argmax(axis=1) != pred
        out["latent_vs_pixel_agreement"] = _mean(_direction(d_pix, epsilon) == _direction(d_lat, epsilon))
        out["latent_vs_pixel_prediction_agreement"] = _mean(flips_pix == flips_lat)
    if plan.nuisance is not None:
        from facr.data.synth import NUISANCE_CHANGES

        shift, change = {}, {}
        everything = np.arange(len(plan.images))
        for name in NUISANCE_CHANGES:
            zs, ys = [], []
            for start in range(0, len(everything), batch_size):
                z, y_ = forward(plan.nuisance(name, everything[start:start + batch_size]))
                zs.append(z)
                ys.append(y_)
            zn, yn = (np.concatenate(zs), np.concatenate(ys)) if zs else (z0, y0)
            shift[name] = _mean(np.abs(zn - z0).mean(axis=1))
            change[name] = _mean(yn.argmax(axis=1) != y0.argmax(axis=1))
        shift["mean"] = _mean([v for v in shift.values() if v is not None])
        out["nuisance_z_shift"] = shift
        out["nuisance_prediction_change"] = change
    else:
        out["nuisance_z_shift"] = None
        out["nuisance_prediction_change"] = None
    return out


# ------------------------------------------------------------------ a facr reasoner
def reasoner_forward(model) -> Forward:
    """:data:`Forward` of a facr :class:`~facr.models.reasoner.Reasoner` (eval mode, no gradients)."""
    import torch

    device = next(model.parameters()).device
    model.eval()

    @torch.no_grad()
    def forward(images: np.ndarray):
        out = model(torch.from_numpy(np.ascontiguousarray(images)).to(device))
        return out.z.float().cpu().numpy(), out.logits.float().cpu().numpy()

    return forward


def reasoner_plan(dataset, data_root: str | None, method: str, limit: int | None = None) -> PixelPlan:
    """The plan for the records of a :class:`~facr.data.torch_data.FaceTorchDataset` (the first
    ``limit``): ``rerender`` needs the synthetic benchmark, ``occlusion`` AU regions on the records,
    ``auto`` takes rerender where it can."""
    from facr.audit.oracle import is_synth

    if method not in METHODS:
        raise ValueError(f"pixel method must be one of {', '.join(METHODS)}, got {method!r}")
    if limit is not None and limit < 1:
        raise FacrError("--pixel-limit", f"must be >= 1, got {limit}")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    records = dataset.records[:n]
    size = dataset.image_size
    synth = data_root is not None and is_synth(data_root) and all("index" in r.meta for r in records)
    if method == "rerender" and not synth:
        raise FacrError(data_root, "--pixel-cf rerender needs the synthetic benchmark (facr data synth writes one); "
                                   "other data is audited by occlusion (--pixel-cf occlusion)")
    if method in ("auto", "rerender") and synth:
        from facr.data.synth import SynthConfig, read_config, sample_scene

        scene = sample_scene(SynthConfig.from_stored(read_config(data_root)["config"]))
        index = np.array([int(r.meta["index"]) for r in records], dtype=np.int64)
        return rerender_plan(scene, index, dataset.aus, size)
    images = dataset.images(np.arange(n)).numpy()
    pairs = [record_regions(r, dataset.aus, size) for r in records]
    m = size // 4
    regions = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, len(dataset.aus), m, m), dtype=bool)
    defined = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, len(dataset.aus)), dtype=bool)
    if not defined.any():
        raise FacrError(data_root, "--pixel-cf: no audited face has AU regions to occlude (the synthetic benchmark's "
                                   "masks, or 68 landmarks in the records' meta)")
    return occlusion_plan(images, regions, defined, dataset.aus)


def pixel_figures(model, dataset, ev, signs: np.ndarray, *, data_root: str | None, method: str = "auto",
                  limit: int | None = None, margin: float | None = None, batch_size: int = 128,
                  progress: bool = False) -> dict:
    """``facr audit --pixel-cf`` for a reasoner: the figures of :func:`score_pixel` on the first
    ``limit`` faces of the audit pass ``ev`` (its ε; its do(z_k = 0) for the latent agreement),
    scored against ``signs`` (the audited graph)."""
    plan = reasoner_plan(dataset, data_root, method, limit)
    n = len(plan.images)
    out = score_pixel(reasoner_forward(model), plan, ev.labels[:n], signs, epsilon=ev.epsilon,
                      margin=margin if margin is not None else ev.margin, latent_cf=ev.cf_logits[:n],
                      batch_size=batch_size, progress=progress)
    out["pixel_intervention"] = (
        "do(AU_k = 0) by re-rendering the benchmark face (all else held); nuisances re-rendered one at a time"
        if plan.method == "rerender" else
        f"do(AU_k = 0) approximated by occluding AU k's region: {FILL}; no nuisance changes")
    return out


# ------------------------------------------------------------------ black boxes: answers on occluded faces
Ask = Callable[[list, list[str]], list[str]]  # (PIL images, prompts) -> one answer each


def occlusion_answers(ask: Ask, records: Sequence, rows: list[dict], *, tasks: Sequence[str] = ("au", "emotion"),
                      batch_size: int = 8, progress: bool = False) -> int:
    """Ask a black box again on each face with each AU region occluded, adding ``occlusions`` to
    each generations row (in place): one entry per AU that the row's answer names or the record's
    labels mark active and that has a region on the face — ``{"au", "named", "active", "output",
    "emotion_output"}`` (``named`` / ``active``: booleans). Rows of faces without such an AU get
    ``occlusions: []``. Returns the number of occluded faces asked about."""
    from PIL import Image
    from tqdm.auto import tqdm

    from facr import au as au_vocab
    from facr.external.generations import PROMPTS, image_of

    if len(records) != len(rows):
        raise ValueError(f"records and rows must pair up, got {len(records)} and {len(rows)}")
    jobs = []  # (entry, occluded image)
    for record, row in zip(records, rows):
        named, active = set(au_vocab.named(row.get("output"))), set(record.active_aus())
        wanted = named | active
        row["occlusions"] = []
        if not wanted:
            continue
        image = np.asarray(image_of(record))
        h, w = image.shape[:2]
        order = au_vocab.sort_aus(wanted)
        masks, defined = record_regions(record, order, 4 * -(-max(h, w) // 4))
        for a, m, ok in zip(order, masks, defined):
            if ok and m.any():
                entry = {"au": a, "named": a in named, "active": a in active}
                row["occlusions"].append(entry)
                jobs.append((entry, Image.fromarray(occlude(image, m))))
    for start in tqdm(range(0, len(jobs), batch_size), desc="occluded", unit="batch", disable=not progress):
        batch = jobs[start:start + batch_size]
        for task in ("au", "emotion"):
            if task not in tasks:
                continue
            answers = ask([im for _, im in batch], [PROMPTS[task]] * len(batch))
            for (entry, _), text in zip(batch, answers):
                entry["output" if task == "au" else "emotion_output"] = text
    return len(jobs)


def occluded_answer_figures(generations: Sequence, candidates: Sequence[str], source: str) -> dict:
    """The occlusion figures of a generations file whose lines carry ``occlusions``
    (:func:`occlusion_answers`): ``pixel_named_au_drop_rate`` (over occlusions of a named AU: it is
    no longer named), ``pixel_emotion_change_rate`` (over the same: the stated emotion changes),
    ``pixel_emotion_change_rate_active`` (over occlusions of a labelled-active AU), and counts."""
    from facr import au as au_vocab
    from facr.external.generations import extract_emotion

    dropped, changed, changed_active = [], [], []
    n_lines = 0
    for g in generations:
        entries = g.extra.get("occlusions")
        if entries is None:
            continue
        where = f"{source}:{g.line}"
        if not isinstance(entries, list):
            raise FacrError(where, "\"occlusions\" must be a list of {\"au\", \"named\", \"active\", \"output\", "
                                   "\"emotion_output\"}")
        n_lines += 1
        named = set(au_vocab.named(g.output))
        stated = extract_emotion(g.emotion_output, candidates) if g.emotion_output is not None else None
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("au"), str) or \
                    not isinstance(e.get("named"), bool) or not isinstance(e.get("active"), bool):
                raise FacrError(where, "an occlusion entry needs \"au\" (an AU) and \"named\", \"active\" (booleans)")
            for key in ("output", "emotion_output"):
                if e.get(key) is not None and not isinstance(e[key], str):
                    raise FacrError(where, f"occlusion {key!r} must be a string")
            try:
                au = au_vocab.canonical(e["au"])
            except ValueError:
                raise FacrError(where, f"occlusion of {e['au']!r}: not a FACS action unit") from None
            after = extract_emotion(e["emotion_output"], candidates) if e.get("emotion_output") is not None else None
            emotion_moved = None if g.emotion_output is None or e.get("emotion_output") is None else after != stated
            if e["named"] and au in named and e.get("output") is not None:
                dropped.append(au not in au_vocab.named(e["output"]))
            if emotion_moved is not None and e["named"]:
                changed.append(emotion_moved)
            if emotion_moved is not None and e["active"]:
                changed_active.append(emotion_moved)
    if not n_lines:
        raise FacrError(source, "--pixel-cf: no line carries \"occlusions\" (write them with facr emola generate "
                                "--model hf-vlm --pixel-cf)")
    return {
        "pixel_cf_method": "occlusion",
        "pixel_fill": FILL,
        "pixel_n_lines": n_lines,
        "pixel_n_named_occlusions": len(dropped),
        "pixel_n_active_occlusions": len(changed_active),
        "pixel_named_au_drop_rate": _mean(dropped),
        "pixel_emotion_change_rate": _mean(changed),
        "pixel_emotion_change_rate_active": _mean(changed_active),
        "pixel_intervention": f"the face asked again with each named or labelled-active AU's region occluded: {FILL}",
    }
