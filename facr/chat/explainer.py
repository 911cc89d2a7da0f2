"""The explainer behind the chat: a reasoner, a reference graph G and (optionally) a verbalizer.

The reasoner is either a pixel reasoner (encoder + head: a face crop → z → ŷ) or a **front end + AU
head** (:mod:`facr.frontends`: a real photo → MediaPipe's z over the AUs it codes → the head's ŷ). Only
:meth:`Explainer.read` (where z comes from) and :meth:`Explainer.where` (region maps of the latent
units, or landmark regions on the face's own points) differ between the two; readings, what-ifs,
checks against G and rationales are one code path on z.

Every what-if goes through the one intervention, :func:`facr.causal.do`, and every per-AU effect
through :func:`facr.causal.intervention_effects` — the same code the training loss and the audits
use — so what the chat says a do() does is what the audit measures.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from facr import au as au_vocab
from facr.au import ACTIVE
from facr.causal import Effects, do, intervention_effects
from facr.errors import FacrError

DEMO = Path("demo-out")
DEMO_MODEL = DEMO / "experiment" / "cells" / "facr" / "seed0" / "fixed"
DEMO_VERBALIZER = DEMO / "verbalizer"
DEMO_DATA = DEMO / "synth"
FRONTENDS = ("mediapipe",)  # front ends the chat runs an AU head on (``facr chat --frontend``)


@dataclass
class Reading:
    """The reasoner's view of one face, as seen or under interventions.

    ``z``: [K] the AU latent; ``effects``: ŷ and ŷ^{do(z_k = 0)} for this one face (batch of 1);
    ``settings``: the do() applied to get here (empty for the face as seen); ``head``: the z → ŷ
    function of this face (for ``head: agcm`` it holds the face's concept embeddings). With a front end:
    ``coded`` [K] bool, False where the front end cannot see AU k (z_k is then 0 and means nothing: shown
    as not seen, never as 0), and ``face`` the front end's :class:`~facr.frontends.FaceReading`."""

    z: torch.Tensor
    effects: Effects
    classes: list[str]
    aus: list[str]
    settings: dict[str, float] = field(default_factory=dict)
    head: object = field(default=None, repr=False, compare=False)
    coded: torch.Tensor | None = None
    face: object = field(default=None, repr=False, compare=False)

    @property
    def logits(self) -> torch.Tensor:
        """ŷ, [C]."""
        return self.effects.logits[0]

    @property
    def delta(self) -> torch.Tensor:
        """Δ_kc = ŷ_c − ŷ_c^{do(z_k = 0)}, [K, C]."""
        return self.effects.delta[0]

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=0)

    @property
    def predicted(self) -> str:
        return self.classes[int(self.logits.argmax())]

    @property
    def active(self) -> list[str]:
        return [a for a, v in zip(self.aus, self.z.tolist()) if v >= ACTIVE]

    def prob(self, cls: str) -> float:
        return float(self.probs[self.classes.index(cls)])

    def seen(self, au: str) -> bool:
        """Whether z of ``au`` is a value: the front end codes it, or a do() set it."""
        return self.coded is None or au in self.settings or bool(self.coded[self.aus.index(au)])

    def z_text(self, au: str) -> str:
        """z of ``au`` as the chat writes it: ``0.83``, or ``not seen`` where the front end cannot see it."""
        return f"{float(self.z[self.aus.index(au)]):.2f}" if self.seen(au) else "not seen"

    def effect(self, au: str, cls: str | None = None) -> float:
        """Δ of ``au`` on ``cls`` (default: the predicted class)."""
        return float(self.delta[self.aus.index(au), self.classes.index(cls or self.predicted)])


@dataclass
class AURow:
    """One AU in the per-face check against G, for one class."""

    au: str
    z: float
    delta: float
    sign: int  # s_kc in G: +1, −1, or 0 (not a parent)
    verdict: str
    seen: bool = True  # False: the front end cannot see the AU (z is no reading)


@dataclass
class FaceCheck:
    """The interventional check of one reading against G for class ``cls`` (the audit's pair test on one face):
    a parent k ∈ Pa(c) passes when s_kc·Δ_kc > margin; a non-parent when |Δ_kc| ≤ ε."""

    cls: str
    graph: str
    rows: list[AURow]
    sens_hits: int
    sens_pairs: int
    inv_hits: int
    inv_pairs: int
    invoked: list[str]
    epsilon: float


class Explainer:
    """A reasoner (``model``), the graph G it is explained against (``graph``), and a verbalizer or None.

    ``model`` is a pixel reasoner (:class:`facr.models.reasoner.Reasoner`), or an AU head
    (:class:`facr.frontends.head.AUHead`, z → ŷ) with the ``frontend`` that gives it z
    (:class:`facr.frontends.mediapipe.MediaPipeFrontend`)."""

    def __init__(self, model, graph, verbalizer=None, *, frontend=None, epsilon: float = 0.1,
                 model_path: str | None = None, verbalizer_path: str | None = None):
        self.model = model.eval()
        self.graph = graph
        self.verbalizer = verbalizer
        self.frontend = frontend
        self.epsilon = float(epsilon)
        self.model_path, self.verbalizer_path = model_path, verbalizer_path
        self.aus: list[str] = list(model.config.aus)
        self.classes: list[str] = list(model.config.classes)
        encoder = getattr(model.config, "encoder", None)  # an AU head has none: its z comes from the front end
        self.image_size: int | None = int(encoder.image_size) if encoder is not None else None
        if verbalizer is not None and list(verbalizer.config.aus) != self.aus:
            raise FacrError(verbalizer_path, "the verbalizer was trained on a reasoner with other AUs "
                                             f"({', '.join(verbalizer.config.aus)})")
        self._lock = threading.Lock()  # one forward pass at a time: two threads would only fight for the cores

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model: str | None = None, verbalizer: str | None = None, graph: str | None = None,
             *, use_verbalizer: bool = True, device: str = "cpu") -> "Explainer":
        """From checkpoints. ``model``: a reasoner run or ``model/`` folder; ``verbalizer``: a verbalizer run
        or folder (its reasoner is used when ``model`` is not given). With neither, the checkpoints
        ``make demo`` writes under ``demo-out/`` are loaded, or an error says how to make them.
        ``graph``: a facr-graph file or built-in name (default: the reasoner's own G)."""
        from facr.audit.auditors import reasoner_folder, training_epsilon
        from facr.audit.rationale import verbalizer_folder, verbalizer_reasoner
        from facr.graph import resolve_graph
        from facr.models.reasoner import load_reasoner

        vfolder = None
        if use_verbalizer:
            vpath = verbalizer if verbalizer is not None else (str(DEMO_VERBALIZER) if model is None else None)
            if vpath is not None:
                vfolder = verbalizer_folder(vpath)
                if vfolder is None:
                    hint = " (run `make demo` to train one, or pass --verbalizer)" if verbalizer is None else ""
                    raise FacrError(vpath, f"no facr verbalizer checkpoint here{hint}")
        if model is None:
            model = verbalizer_reasoner(vfolder) if vfolder is not None else str(DEMO_MODEL)
            hint = " (run `make demo` to train one, or pass --model)"
        else:
            hint = ""
        folder = reasoner_folder(model)
        if folder is None:
            raise FacrError(model, f"no facr reasoner checkpoint here{hint}")
        reasoner, own = load_reasoner(folder, map_location=device)
        g = own if graph is None else resolve_graph(graph)
        v = None
        if vfolder is not None:
            from facr.verbalizer.model import load_verbalizer

            v = load_verbalizer(vfolder, device=device)
        return cls(reasoner.to(device), g, v, epsilon=training_epsilon(folder) or 0.1, model_path=str(folder),
                   verbalizer_path=str(vfolder) if vfolder else None)

    @classmethod
    def load_frontend(cls, frontend: str = "mediapipe", model: str | None = None, verbalizer: str | None = None,
                      graph: str | None = None, *, device: str = "cpu") -> "Explainer":
        """A front end and an AU head: ``model`` is a head folder (``facr train head``; default: the shipped
        real-face head, :func:`facr.frontends.head.default_head_path`), ``verbalizer`` one trained on a
        latent with the head's AU order (else refused), ``graph`` as in :meth:`load`. The front end's native
        tasks are opened here, so a missing MediaPipe install is one line at start, not at the first face."""
        from facr.frontends.head import default_head_path, load_head
        from facr.frontends.mediapipe import MediaPipeFrontend
        from facr.graph import resolve_graph

        if frontend not in FRONTENDS:
            raise FacrError("--frontend", f"unknown front end {frontend!r} (choose from {', '.join(FRONTENDS)})")
        path = Path(model) if model is not None else default_head_path()
        head, own = load_head(path)
        g = own if graph is None else resolve_graph(graph)
        v, vfolder = None, None
        if verbalizer is not None:
            from facr.audit.rationale import verbalizer_folder
            from facr.verbalizer.model import load_verbalizer

            vfolder = verbalizer_folder(verbalizer)
            if vfolder is None:
                raise FacrError(verbalizer, "no facr verbalizer checkpoint here")
            v = load_verbalizer(vfolder, device=device)
        reader = MediaPipeFrontend(head.config.aus).open()
        return cls(head.to(device), g, v, frontend=reader, epsilon=head_epsilon(path), model_path=str(path),
                   verbalizer_path=str(vfolder) if vfolder else None)

    # ------------------------------------------------------------------ the front end
    def unseen(self, au: str) -> str | None:
        """Why the front end cannot see ``au`` (None when it can, or when there is no front end)."""
        if self.frontend is None or au in self.frontend.map.weights:
            return None
        from facr.frontends.mediapipe import NOT_SEEN

        return NOT_SEEN.get(au, "no row for it in the front end's blendshape map")

    def not_seen(self, graph=None) -> list[str]:
        """The AUs of the head's latent, of ``graph`` (default G) and of the front end's own list of blind
        spots that the front end cannot see ([] without a front end)."""
        if self.frontend is None:
            return []
        from facr.frontends.mediapipe import NOT_SEEN

        g = graph or self.graph
        candidates = set(self.aus) | set(NOT_SEEN) | {e.source for c in g.classes for e in g.parent_edges(c)}
        return [a for a in au_vocab.sort_aus(candidates) if self.unseen(a)]

    def prepare(self, source, *, detect: bool = True, name: str | None = None):
        """A picture (path, bytes, array) as the explainer reads it: a :class:`~facr.chat.face.Face`. A pixel
        reasoner gets its face crop (:func:`~facr.chat.face.prepare_face`); a front end reads the whole picture
        and keeps its reading of the largest face (``detect`` does not apply: the front end always detects).
        No face: :class:`~facr.chat.face.FaceError`."""
        from facr.chat.face import prepare_face

        if self.frontend is None:
            return prepare_face(source, self.image_size, detect=detect, name=name)
        from facr.chat.realface import frontend_face

        return frontend_face(self.frontend, source, name)

    # ------------------------------------------------------------------ readings
    def signs(self, graph=None) -> torch.Tensor:
        """s [K, C] of ``graph`` (default: the explainer's G) in the model's orders."""
        from facr.causal import graph_signs

        return graph_signs(graph or self.graph, self.aus, self.classes)

    @torch.no_grad()
    def read(self, pixels: np.ndarray, face=None) -> Reading:
        """The reasoner on one ``[S, S, 3]`` uint8 face: z = σ(f(x)), ŷ and every do(z_k = 0). With a front
        end: ``pixels`` is a whole picture and the largest face in it is read (or ``face``, the front end's
        reading of it, when given); no face raises :class:`~facr.chat.face.FaceError`."""
        if self.frontend is not None:
            if face is None:
                face = self.prepare(pixels).reading
            return self.read_face(face)
        device = next(self.model.parameters()).device
        x = torch.from_numpy(np.array(pixels, dtype=np.uint8, copy=True)).unsqueeze(0).to(device)
        with self._lock:
            latent = self.model.latent(x)
        return self.read_latent(latent.z[0], head=latent.head)

    def read_face(self, face) -> Reading:
        """A front end's :class:`~facr.frontends.FaceReading` through the head: z in the head's AU order (an
        AU the front end does not code is 0 to the head and marked not seen), then :meth:`read_latent`."""
        from facr.frontends.head import align

        z, coded = align([face], self.aus)
        return self.read_latent(torch.from_numpy(z[0]), coded=torch.from_numpy(coded[0]), face=face)

    @torch.no_grad()
    def read_latent(self, z: torch.Tensor, settings: dict[str, float] | None = None, head=None, *,
                    coded: torch.Tensor | None = None, face=None) -> Reading:
        """ŷ = head(z) and Δ under every do(z_k = 0), in one batched head call (:mod:`facr.causal`).
        ``head``: the face's z → ŷ (default: the model's z-only head); ``coded``, ``face``: as in
        :class:`Reading`."""
        head = head or self.model.latent_head()
        device = next(self.model.parameters()).device
        with self._lock:
            eff = intervention_effects(head, z.reshape(1, -1).float().to(device))
        eff = Effects(eff.logits.cpu(), eff.cf_logits.cpu(), eff.value)
        return Reading(z=z.detach().cpu().float(), effects=eff, classes=self.classes, aus=self.aus,
                       settings=dict(settings or {}), head=head, coded=coded, face=face)

    def what_if(self, base: Reading, settings: dict[str, float]) -> Reading:
        """``base`` under do(z_k = v) for every (k, v) in ``settings`` (AU names; v in [0, 1]), on top of the
        do()s ``base`` already carries."""
        unknown = [a for a in settings if au_vocab.canonical(a) not in self.aus]
        if unknown:
            raise FacrError(None, f"{unknown[0]} is not in this model's latent ({', '.join(self.aus)})")
        z = base.z.reshape(1, -1)
        for a, v in settings.items():
            if not 0.0 <= float(v) <= 1.0:
                raise FacrError(None, f"do({a} = {v}): z_k must be in [0, 1]")
            z = do(z, self.aus.index(au_vocab.canonical(a)), float(v))
        merged = {**base.settings, **{au_vocab.canonical(a): float(v) for a, v in settings.items()}}
        return self.read_latent(z[0], merged, head=base.head, coded=base.coded, face=base.face)

    # ------------------------------------------------------------------ where
    def where(self, pixels: np.ndarray, aus: list[str] | None = None, graph=None, method: str | None = None,
              reading: Reading | None = None):
        """Region maps of ``aus`` (default: the AUs invoked for the prediction under ``graph``) on one
        face: a :class:`facr.explain.overlay.FaceMaps` with ``image`` (the rendered overlays, RGB). A pixel
        reasoner: maps of its latent units (``method``); a front end: each AU's landmark region on the
        face's own points (:func:`facr.chat.realface.landmark_maps`; ``reading``: that face as read from
        ``pixels``, read again when None)."""
        import io

        from PIL import Image

        from facr.explain.overlay import explain_face, render

        if self.frontend is not None:
            from facr.chat.realface import landmark_maps

            fm = landmark_maps(self, pixels, reading or self.read(pixels), aus, graph)
        else:
            with self._lock:
                fm = explain_face(self.model, graph or self.graph, pixels, method, aus)
        fm.image = np.asarray(Image.open(io.BytesIO(render(fm))).convert("RGB"))
        return fm

    # ------------------------------------------------------------------ against G
    def parents(self, cls: str, graph=None) -> list[tuple[str, int, float, str]]:
        """Pa(c) in G as (AU, sign, weight, provenance), strongest first; [] for a class G lacks."""
        g = graph or self.graph
        if cls not in g.classes:
            return []
        edges = sorted(g.parent_edges(cls), key=lambda e: (-e.weight, au_vocab.parse(e.source)))
        return [(e.source, int(e.sign), float(e.weight), e.provenance) for e in edges]

    def check(self, reading: Reading, cls: str | None = None, graph=None) -> FaceCheck:
        """The audit's interventional pair test (:func:`facr.audit.metrics.pair_hits`) on one reading, for
        ``cls`` (default: the predicted class) against ``graph`` (default: G)."""
        from facr.audit.metrics import invoked_aus, pair_hits

        g = graph or self.graph
        cls = cls or reading.predicted
        c = self.classes.index(cls)
        s = self.signs(g)
        eff = reading.effects
        target = torch.tensor([c])
        hits = pair_hits(eff, s, target, reading.z[None], self.epsilon)
        invoked = [self.aus[k] for k in invoked_aus(eff, s, target)[0]]
        rows = []
        for k, a in enumerate(self.aus):
            sign, d, zk = int(s[k, c]), float(reading.delta[k, c]), float(reading.z[k])
            if not reading.seen(a):
                rows.append(AURow(a, zk, d, sign, "not seen by this front end", seen=False))
                continue
            if sign and sign * d > self.epsilon:
                verdict = "moves as G says"
            elif sign:
                verdict = "does not move as G says" + (" (inactive here)" if zk < ACTIVE else "")
            elif abs(d) <= self.epsilon:
                verdict = "no effect, as G says"
            else:
                verdict = "moves, though G has no edge"
            rows.append(AURow(a, zk, d, sign, verdict))
        return FaceCheck(cls, g.name, rows, int(hits["sens_hits"][0]), int(hits["sens_pairs"][0]),
                         int(hits["inv_hits"][0]), int(hits["inv_pairs"][0]), invoked, self.epsilon)

    # ------------------------------------------------------------------ words
    def plan(self, reading: Reading):
        """What the rationale of ``reading`` says (:class:`facr.verbalizer.plan.RationalePlan`): the AUs
        invoked for the predicted class under G that the latent shows, largest effect first (those whose
        removal raises the class's logit counted against it); the predicted class and its probability."""
        from facr.verbalizer.plan import RationalePlan

        check = self.check(reading)
        return RationalePlan.for_face(check.invoked, dict(zip(reading.aus, reading.z.tolist())),
                                      {row.au: row.delta for row in check.rows}, reading.predicted,
                                      round(reading.prob(reading.predicted), 2))

    def rationale_stream(self, reading: Reading) -> Iterator[str]:
        """The verbalizer's rationale for ``reading`` (its z and its predicted emotion), growing token by
        token; the last item is the whole text, identical to :meth:`rationale`. Without a verbalizer: a
        rationale read off the effects (the invoked active AUs), in one piece."""
        if self.verbalizer is None:
            yield self.effects_rationale(reading)
            return
        from transformers import TextIteratorStreamer

        from facr.verbalizer.model import clean_text

        v = self.verbalizer
        streamer = TextIteratorStreamer(v.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        result: dict = {}

        def run():
            try:
                with self._lock:
                    result["text"] = v.generate(reading.z[None], [reading.predicted], plans=[self.plan(reading)],
                                                streamer=streamer)[0]
            except Exception as exc:  # noqa: BLE001 - handed to the caller's thread below
                result["error"] = exc
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text = ""
        for piece in streamer:
            text += piece
            yield clean_text(text).strip()
        thread.join()
        if "error" in result:
            raise result["error"]
        yield result["text"]

    @property
    def rationale_source(self) -> str:
        """Where the rationale's words come from, as the chat heads it."""
        return "the verbalizer, gated by z" if self.verbalizer is not None else \
            "read off the intervention effects: no verbalizer"

    def rationale(self, reading: Reading) -> str:
        *_, last = self.rationale_stream(reading)
        return last

    def effects_rationale(self, reading: Reading) -> str:
        """Words without a verbalizer: the active AUs whose removal moves the predicted class most,
        those that support it, then those that speak against it (removing one raises the class)."""
        c = reading.predicted
        ranked = sorted(reading.active, key=lambda a: -abs(reading.effect(a, c)))
        drivers = [a for a in ranked if abs(reading.effect(a, c)) > self.epsilon][:4]
        if not drivers:
            return f"The face shows {c}; no active AU moves that decision by more than ε = {self.epsilon:g}."
        support = [a for a in drivers if reading.effect(a, c) > 0]
        against = [a for a in drivers if reading.effect(a, c) < 0]  # removing it raises c: it speaks against c
        verb = "speak" if len(against) > 1 else "speaks"
        if not support:
            return f"The face shows {c}, although {au_vocab.listed(against)} {verb} against it."
        tail = f", although {au_vocab.listed(against)} {verb} against it" if against else ""
        return f"The face shows {c} because of {au_vocab.listed(support)}{tail}."

    @staticmethod
    def named(text: str) -> list[str]:
        """The AUs a rationale names (the one parser)."""
        return [f"AU{n}" for n in au_vocab.extract(text)]


def head_epsilon(folder: Path) -> float:
    """The ε an AU head was trained with (its ``training.json``), else 0.1."""
    from facr.utils import loads_json

    try:
        value = loads_json((Path(folder) / "training.json").read_text(encoding="utf-8"))["config"]["epsilon"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0.1
    return float(value) if isinstance(value, (int, float)) else 0.1
