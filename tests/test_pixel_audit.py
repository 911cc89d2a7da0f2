"""Pixel-level interventions (issue 21, part A): do(AU_k = v) and nuisance changes by re-rendering the
benchmark, occlusion by inpainting, the pixel figures of `facr audit --pixel-cf`, and the occlusion audit
of a black-box VLM."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from facr.audit.pixel import occlude, occluded_answer_figures, occlusion_answers, rerender_plan, score_pixel
from facr.causal import graph_signs, intervention_effects
from facr.data.synth import (
    MASK_STRIDE,
    NUISANCE_CHANGES,
    RENDERERS,
    SYNTH_AUS,
    SynthConfig,
    generate,
    render_intervention,
    sample_scene,
    true_graph,
)

SIZE = 64


@pytest.fixture(scope="module")
def scene():
    return sample_scene(SynthConfig(n=48, seed=3, subjects=6, size=SIZE))


def _cells_to_pixels(masks: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(masks, MASK_STRIDE, axis=-2), MASK_STRIDE, axis=-1)


# ------------------------------------------------------------------ the renderer's do()
@pytest.mark.parametrize("renderer", RENDERERS)
def test_do_au_zero_changes_pixels_only_inside_that_aus_region(renderer):
    """Every active AU of every face, removed by re-rendering: the pixels that change lie inside AU k's
    region (the union of its stored mask for the factual and the intervened intensities, no dilation
    needed), and removing an active AU changes pixels (but where another AU hides it: AU5 / AU7
    under closed eyes, AU43). Both renderer versions."""
    scene = sample_scene(SynthConfig(n=48, seed=3, subjects=6, size=SIZE, renderer=renderer))
    index = np.arange(scene.n)
    factual, masks = render_intervention(scene, index, masks=True)
    assert np.array_equal(factual, generate(scene.config).images)  # nothing asked: the written pixels
    pairs = changed = 0
    for k, au in enumerate(SYNTH_AUS):
        active = np.flatnonzero(scene.intensity[:, k] > 0)
        if not len(active):
            continue
        cf, cf_masks = render_intervention(scene, active, au=au, value=0.0, masks=True)
        diff = np.any(cf != factual[active], axis=-1)
        region = _cells_to_pixels(masks[active, k] | cf_masks[:, k])
        assert not (diff & ~region).any(), f"{au}: pixels outside its region changed"
        hidden = scene.intensity[active, SYNTH_AUS.index("AU43")] > 0
        moved = diff.any(axis=(1, 2))
        assert moved[~hidden].all() or au in ("AU5", "AU7"), f"{au}: removing it changed nothing"
        pairs += len(active)
        changed += int(moved.sum())
    assert pairs > 100 and changed / pairs > 0.95


def test_do_au_sets_the_intensity_and_holds_everything_else(scene):
    i = int(np.flatnonzero(scene.intensity[:, SYNTH_AUS.index("AU12")] == 0)[0])
    up = render_intervention(scene, [i, i], au=["AU12", 12], value=[5.0, 3.0])
    factual = render_intervention(scene, [i])[0]
    assert not np.array_equal(up[0], factual) and not np.array_equal(up[0], up[1])
    with pytest.raises(ValueError, match="not drawn"):
        render_intervention(scene, [i], au="AU45")
    with pytest.raises(ValueError, match=r"\[0, 5\]"):
        render_intervention(scene, [i], au="AU12", value=6)


def test_each_nuisance_change_is_fixed_and_moves_what_it_names(scene):
    index = np.arange(12)
    factual, masks = render_intervention(scene, index, masks=True)

    def corner(ims: np.ndarray) -> np.ndarray:  # the background, top left
        return ims[:, :3, :3].reshape(len(ims), -1).astype(int)

    for change in NUISANCE_CHANGES:
        once, m = render_intervention(scene, index, nuisance=change, masks=True)
        assert np.array_equal(once, render_intervention(scene, index, nuisance=change))  # deterministic
        assert all(not np.array_equal(a, b) for a, b in zip(once, factual)), change
        if change == "hue":
            assert np.array_equal(m, masks)  # the face is where it was
            assert np.abs(corner(once) - corner(factual)).max(axis=1).min() > 20
        if change == "pose":
            assert not np.array_equal(m, masks)
    with pytest.raises(ValueError, match="nuisance"):
        render_intervention(scene, index, nuisance="age")


def test_occlusion_inpaints_only_the_region(scene):
    image = render_intervention(scene, [0])[0]
    mask = np.zeros((SIZE // 4, SIZE // 4), dtype=bool)
    mask[8:11, 6:10] = True
    out = occlude(image, mask)
    inside = _cells_to_pixels(mask)
    assert np.array_equal(out[~inside], image[~inside])
    assert np.any(out[inside] != image[inside])
    assert np.array_equal(occlude(image, np.zeros_like(mask)), image)


# ------------------------------------------------------------------ the figures, on known encoders
def _head(aus: list[str], classes: list[str]) -> torch.nn.Linear:
    """ŷ = 2·s_kc·z: each class reads its true parents with their signs (and nothing else)."""
    head = torch.nn.Linear(len(aus), len(classes), bias=False)
    with torch.no_grad():
        head.weight.copy_(2.0 * graph_signs(true_graph(), aus, classes).float().T)
    return head


class HueReader(torch.nn.Module):
    """z from the mean colour of the top-left background patch only: the pure shortcut."""

    def __init__(self, n_aus: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(3, n_aus, generator=g) * 12.0)
        self.b = torch.nn.Parameter(-self.w.sum(0) * 0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        colour = images[:, :4, :4].float().mean(dim=(1, 2)) / 255.0
        return torch.sigmoid(colour @ self.w + self.b)


def _forward(encoder, head):
    @torch.no_grad()
    def forward(images: np.ndarray):
        z = encoder(torch.from_numpy(images))
        return z.numpy(), head(z).numpy()
    return forward


def _oracle(scene, aus: list[str]):
    """z = 0.9 where the image shows the AU, else 0.1, looked up by the image's bytes: every image the
    audit can render (factual, each active AU removed, each nuisance changed) is registered with its
    true intensities."""
    cols = [SYNTH_AUS.index(a) for a in aus]
    table: dict[bytes, np.ndarray] = {}

    def key(im: np.ndarray) -> bytes:
        return hashlib.sha1(np.ascontiguousarray(im).tobytes()).digest()

    index = np.arange(scene.n)
    for im, inten in zip(render_intervention(scene, index), scene.intensity):
        table[key(im)] = inten[cols]
    for change in NUISANCE_CHANGES:
        for im, inten in zip(render_intervention(scene, index, nuisance=change), scene.intensity):
            table[key(im)] = inten[cols]
    for k, a in enumerate(SYNTH_AUS):
        active = np.flatnonzero(scene.intensity[:, k] > 0)
        for im, i in zip(render_intervention(scene, active, au=a), active):
            inten = scene.intensity[i].copy()
            inten[k] = 0.0
            table.setdefault(key(im), inten[cols])  # an invisible removal is the factual image
    return lambda images: torch.from_numpy(np.where(np.stack([table[key(im)] for im in images.numpy()]) > 0,
                                                    0.9, 0.1).astype(np.float32))


def _score(scene, encoder):
    aus = list(SYNTH_AUS)
    classes = scene.config.emotions
    head = _head(aus, classes)
    plan = rerender_plan(scene, np.arange(scene.n), aus, SIZE)
    forward = _forward(encoder, head)
    z0, _ = forward(plan.images)
    latent_cf = intervention_effects(head, torch.from_numpy(z0)).cf_logits.detach().numpy()
    signs = graph_signs(true_graph(), aus, classes).numpy()
    return score_pixel(forward, plan, scene.emotion, signs, epsilon=0.1, latent_cf=latent_cf, batch_size=16)


def test_an_encoder_that_reads_only_the_hue_sees_no_au_in_pixels(scene):
    m = _score(scene, HueReader(len(SYNTH_AUS)))
    assert m["pixel_cf_method"] == "rerender" and m["pixel_n_pairs"] > 100
    assert m["pixel_au_sensitivity"] == 0.0 and m["pixel_au_leakage"] < 1e-6  # (float noise of batching)
    # the hue puts some z_k above ½ (those AUs are "seen"), and none of them drops with the AU
    assert 0.0 < m["pixel_au_seen"] < 1.0 and m["pixel_au_drop_when_seen"] == 0.0
    assert m["pixel_cf_sensitivity"] == 0.0 and m["pixel_cf_invariance"] == 1.0
    assert m["nuisance_z_shift"]["hue"] > 0.15  # z moves with the background and nothing else
    assert m["nuisance_z_shift"]["hue"] > 5 * m["nuisance_z_shift"]["identity"]


def test_an_oracle_encoder_gets_full_pixel_sensitivity_and_no_shift(scene):
    m = _score(scene, _oracle(scene, list(SYNTH_AUS)))
    assert m["pixel_au_sensitivity"] == 1.0 and m["pixel_au_leakage"] == 0.0
    assert m["pixel_cf_sensitivity"] == 1.0 and m["pixel_cf_invariance"] == 1.0
    assert m["latent_vs_pixel_agreement"] == 1.0
    assert all(v == 0.0 for v in m["nuisance_z_shift"].values())
    assert all(v == 0.0 for v in m["nuisance_prediction_change"].values())
    assert m["pixel_n_invisible"] > 0  # AU5 / AU7 under closed eyes: no pixel to remove, left out
    assert m["pixel_n_pairs"] + m["pixel_n_invisible"] == int((scene.intensity > 0).sum())
    assert m["pixel_au_seen"] == 1.0 and m["pixel_au_drop_when_seen"] == 1.0


def test_pixel_au_sensitivity_splits_into_seen_and_dropped_when_seen(scene):
    """An encoder that reads every AU exactly but AU12 from elsewhere (always present): z sees every
    AU12, and none of them drops, so AU12's pixel AU sensitivity is 0 with ``seen`` 1."""
    oracle, k = _oracle(scene, list(SYNTH_AUS)), SYNTH_AUS.index("AU12")

    def sticky(images):
        z = oracle(images).clone()
        z[:, k] = 0.9
        return z

    m = _score(scene, sticky)
    au12 = m["pixel_per_au"]["AU12"]
    assert au12["n_pairs"] > 0 and au12["seen"] == 1.0 and au12["drop_when_seen"] == 0.0 == au12["au_sensitivity"]
    assert all(v["seen"] == 1.0 == v["drop_when_seen"] for a, v in m["pixel_per_au"].items() if a != "AU12")
    assert m["pixel_au_seen"] == 1.0
    assert m["pixel_au_drop_when_seen"] == pytest.approx(1 - au12["n_pairs"] / m["pixel_n_pairs"])
    assert m["pixel_au_sensitivity"] == pytest.approx(m["pixel_au_seen"] * m["pixel_au_drop_when_seen"])


# ------------------------------------------------------------------ the CLI, on a trained reasoner
PIXEL_KEYS = ("pixel_au_sensitivity", "pixel_au_leakage", "pixel_cf_sensitivity", "pixel_cf_invariance",
              "latent_vs_pixel_agreement", "shortcut_reliance")


def test_audit_pixel_cf_puts_the_pixel_figures_at_the_top_of_the_json(reasoner, run_cli, tmp_path):
    data, run = reasoner
    code, out, err = run_cli("audit", "--model", run, "--data", data, "--pixel-cf", "--json", "--no-progress")
    assert code == 0, err
    m = json.loads(out)
    assert m["pixel_cf_method"] == "rerender" and m["pixel_n_faces"] == m["n_samples"] > 0
    for key in PIXEL_KEYS:
        assert m[key] is not None and 0.0 <= m[key] <= 1.0, key
    assert m["pixel_au_sensitivity"] == pytest.approx(m["pixel_au_seen"] * (m["pixel_au_drop_when_seen"] or 0.0))
    assert set(m["nuisance_z_shift"]) == {*NUISANCE_CHANGES, "mean"}
    assert all(0.0 <= v <= 1.0 for v in m["nuisance_z_shift"].values())
    assert m["shortcut_reliance"] == m["oracle"]["shortcut_reliance"]
    assert m["pixel_n_sensitivity_pairs"] + m["pixel_n_invariance_pairs"] == m["pixel_n_pairs"]

    code, out, err = run_cli("audit", "--model", run, "--data", data, "--pixel-cf", "occlusion", "--pixel-limit", "5",
                             "--out", tmp_path / "audit", "--no-progress")
    assert code == 0, err
    assert "in pixels (occlusion, 5 faces)" in out and "pixel CF invariance" in out
    report = (tmp_path / "audit" / "report.md").read_text()
    assert "## In pixels (occlusion)" in report and "inpaint" in report
    assert "| AU | pairs | z saw it | dropped when seen |" in report  # the per-AU table
    m = json.loads((tmp_path / "audit" / "metrics.json").read_text())
    assert m["pixel_fill"].startswith("inpaint") and m["nuisance_z_shift"] is None

    code, out, err = run_cli("audit", "--model", run, "--data", data, "--pixel-cf", "--pixel-limit", "0", "--json")
    assert code == 2 and err.startswith("facr: --pixel-limit: must be >= 1")


def test_audit_pixel_cf_on_real_faces_occludes_the_landmark_regions(reasoner, run_cli, repo):
    """AffectNet-layout faces with 68 landmarks: no benchmark to re-render, so the audit occludes the
    landmark ROIs (and says so); the rerender method is refused there."""
    _, run = reasoner
    data = repo / "tests" / "data" / "fixtures" / "affectnet"
    argv = ("audit", "--model", run, "--data", data, "--format", "affectnet", "--split", "all", "--no-progress")
    code, out, err = run_cli(*argv, "--pixel-cf", "--json")
    assert code == 0, err
    m = json.loads(out)
    assert m["pixel_cf_method"] == "occlusion" and m["pixel_n_faces"] == m["n_samples"] > 0
    assert m["pixel_n_pairs"] > 0 and 0.0 <= m["pixel_au_sensitivity"] <= 1.0
    assert m["nuisance_z_shift"] is None and m["shortcut_reliance"] is None
    code, out, err = run_cli(*argv, "--pixel-cf", "rerender", "--json")
    assert code == 2 and "--pixel-cf rerender needs the synthetic benchmark" in err


# ------------------------------------------------------------------ black boxes
def _records(tmp_path_factory):
    from facr.data.formats import load as load_format
    from facr.data.synth import write_synth

    root = tmp_path_factory.mktemp("pixel-vlm") / "synth"
    write_synth(root, SynthConfig(n=48, seed=5, subjects=6, size=SIZE), workers=1)
    return root, [r for r in load_format("synth", root).records if r.split == "test"]


@pytest.fixture(scope="module")
def vlm_data(tmp_path_factory):
    return _records(tmp_path_factory)


def test_occluded_answers_of_a_scripted_black_box_are_scored_exactly(vlm_data):
    """A black box that names AU4 and AU12 while their regions are intact (each read where the other's
    region does not reach) and says happiness while AU12 is: occluding a named AU drops it from the
    text every time; the emotion changes exactly when AU12's region is the one occluded. A black box
    that ignores the face drops nothing."""
    from PIL import Image

    from facr.audit.pixel import record_regions
    from facr.external.generations import PROMPTS, Generation

    _, records = vlm_data
    records = records[:4]
    originals = [np.asarray(r.image) for r in records]
    own = []  # per face, the pixels of AU4's and of AU12's region that the other region leaves out
    for r in records:
        m4, m12 = _cells_to_pixels(record_regions(r, ["AU4", "AU12"], SIZE)[0])
        own.append((m4 & ~m12, m12 & ~m4))

    def seeing(images, prompts):
        out = []
        for im in images:
            im = np.asarray(im)
            face = next(i for i, o in enumerate(originals) if o.shape == im.shape and
                        np.mean(o != im) < 0.5)  # which face: the occlusion changes a small part
            kept = [a for a, m in zip(("AU4", "AU12"), own[face]) if np.array_equal(originals[face][m], im[m])]
            said = " and ".join(kept) or "none"
            out.append(said if "AUs" in prompts[0] else ("happiness" if "AU12" in kept else "sadness"))
        return out

    def blind(images, prompts):
        return ["AU4 and AU12, happiness"] * len(images)

    for ask, drop, change in ((seeing, 1.0, 0.5), (blind, 0.0, 0.0)):
        factual = [Image.fromarray(o) for o in originals]
        rows = [{"image": str(i), "output": a, "emotion_output": e} for i, (a, e) in
                enumerate(zip(ask(factual, [PROMPTS["au"]] * 4), ask(factual, [PROMPTS["emotion"]] * 4)))]
        occlusion_answers(ask, records, rows)
        named = sum(e["named"] for row in rows for e in row["occlusions"])
        assert named == 8  # AU4 and AU12 on each of the four faces
        gens = [Generation(row["image"], row["output"], row["emotion_output"], line=i + 1,
                           extra={"occlusions": row["occlusions"]}) for i, row in enumerate(rows)]
        m = occluded_answer_figures(gens, ["happiness", "sadness"], "g.jsonl")
        assert m["pixel_n_named_occlusions"] == 8
        assert m["pixel_named_au_drop_rate"] == drop and m["pixel_emotion_change_rate"] == change


def test_vlm_occlusion_audit_with_a_tiny_llava(vlm_data, tmp_path, run_cli):
    """`facr emola generate --model hf-vlm --pixel-cf` asks the tiny LLaVA again on each face with each
    labelled-active (or named) AU occluded; `facr audit --model emola --pixel-cf` scores the answers."""
    from facr.testing import tiny_llava

    data, records = vlm_data
    vlm = tiny_llava(tmp_path / "llava")
    out = tmp_path / "vlm.jsonl"
    code, stdout, err = run_cli("emola", "generate", "--model", "hf-vlm", "--vlm", vlm, "--data", data, "--limit", "3",
                                "--max-new-tokens", "6", "--pixel-cf", "--out", out, "--json")
    assert code == 0, err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    for line, record in zip(lines, records[:3]):
        assert {e["au"] for e in line["occlusions"] if e["active"]} == set(record.active_aus())
        assert all(isinstance(e["output"], str) and isinstance(e["emotion_output"], str) for e in line["occlusions"])
    n_active = sum(len(r.active_aus()) for r in records[:3])
    assert n_active > 0
    code, stdout, err = run_cli("audit", "--model", "emola", "--generations", out, "--data", data, "--pixel-cf",
                                "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["pixel_cf_method"] == "occlusion" and m["pixel_n_lines"] == 3
    assert m["pixel_n_active_occlusions"] == n_active
    assert 0.0 <= m["pixel_emotion_change_rate_active"] <= 1.0
    assert (m["pixel_named_au_drop_rate"] is None) == (m["pixel_n_named_occlusions"] == 0)
    assert m["cf_sensitivity"] is None  # still no latent to intervene on
    # a file without occluded answers cannot give pixel figures
    plain = tmp_path / "plain.jsonl"
    plain.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "occlusions"}) + "\n" for x in lines))
    code, _, err = run_cli("audit", "--model", "emola", "--generations", plain, "--data", data, "--pixel-cf")
    assert code == 2 and "no line carries \"occlusions\"" in err
