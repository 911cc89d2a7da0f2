"""The Gradio app: give a face, see the reasoner's reading, ask why and what if, swap the graph.

``facr chat`` and ``python app/app.py`` both call :func:`main`; tests call :func:`build_app` and
launch it on a free loopback port. Every answer comes from :class:`facr.chat.ChatSession`. With a
front end (``--frontend mediapipe``, or no demo checkpoints) the app reads real photos through
MediaPipe and the shipped real-face head, says which AUs the front end cannot see, and streams the
webcam (emotion and AU bars per frame).
"""

import argparse
import contextlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from facr.chat.explainer import DEMO_DATA, DEMO_MODEL, DEMO_VERBALIZER, FRONTENDS, Explainer
from facr.chat.face import MAX_BYTES, Face, FaceError
from facr.chat.plots import au_bars, parents_figure
from facr.chat.session import EXAMPLES, ChatSession
from facr.errors import FacrError
from facr.utils import free_port

DEFAULT_PORT = 7860
HOST = "127.0.0.1"
# (every, age) in seconds: Gradio sweeps this app's cached files (uploads, drawn panels) older than an hour every
# ten minutes, and all of them when the server stops; a refused upload is removed at once (_discard).
DELETE_CACHE = (600, 3600)


def gallery_samples(data: str | os.PathLike | None, classes: list[str], split: str = "test",
                    per_class: int = 1) -> list[tuple[np.ndarray, str]]:
    """Benchmark faces for the gallery: the first ``per_class`` labelled faces of each class in ``split``
    (all splits where that one is empty), as (RGB array, caption). [] when ``data`` is None or missing."""
    if data is None or not Path(data).exists():
        return []
    from facr.chat.face import read_image
    from facr.data import formats

    root = Path(data)
    records = formats.load(formats.resolve_format(root, how="give a folder in a known layout"), root).records
    pick = [r for r in records if r.split == split] or records
    out, counts = [], {c: 0 for c in classes}
    for r in pick:
        if r.emotion in counts and counts[r.emotion] < per_class:
            if isinstance(r.image, np.ndarray):
                arr = r.image
            else:
                arr = read_image(r.image if Path(str(r.image)).is_absolute() else root / r.image)
            out.append((arr, f"{r.emotion} · {r.subject}"))
            counts[r.emotion] += 1
    return out


def _probs(reading) -> dict[str, float]:
    return {c: float(p) for c, p in zip(reading.classes, reading.probs.tolist())}


def _panels(session: ChatSession):
    """(class probabilities, AU bars, parents drawing) of the reading now shown."""
    r = session.current
    parents = session.explainer.parents(r.predicted, session.graph)
    signs = {a: s for a, s, _, _ in parents}
    return _probs(r), au_bars(r, signs), parents_figure(parents, r, getattr(session.graph, "name", "G"),
                                                        session.explainer.not_seen(session.graph))


def _seen_image(session: ChatSession) -> np.ndarray:
    """The "what the model sees" panel: a pixel reasoner's input, enlarged; a front end's face crop with the
    landmarks it found."""
    if session.explainer.frontend is None:
        return _enlarged(session.pixels)
    from facr.chat.realface import face_view

    return face_view(session.pixels, session.face.face)


def not_seen_line(explainer: Explainer, graph=None) -> str:
    """One line naming the AUs the front end cannot see ("" without a front end)."""
    blind = explainer.not_seen(graph)
    if not blind:
        return ""
    from facr import au as au_vocab

    names = ", ".join(au_vocab.phrase(a) for a in blind)
    return f"Not seen by this front end (not coded, never read as 0): {names}."


def live_reading(explainer: Explainer, frame, reader=None) -> tuple[dict | None, np.ndarray | None, str]:
    """One webcam frame through the front end (``reader``: default the explainer's) and the head, as the live
    panels show it: (class probabilities, AU bars, status line); no face: (None, None, a line saying so)."""
    if frame is None:
        return None, None, "Waiting for the webcam."
    faces = (reader or explainer.frontend).read(np.asarray(frame))
    if not faces:
        return None, None, "No face in this frame."
    r = explainer.read_face(faces[0])
    signs = {a: s for a, s, _, _ in explainer.parents(r.predicted)}
    line = f"Live: **{r.predicted}** (p = {r.prob(r.predicted):.2f}); active AUs: {', '.join(r.active) or 'none'}."
    return _probs(r), au_bars(r, signs), line


def _enlarged(pixels: np.ndarray, side: int = 160) -> np.ndarray:
    """The model's input shown at ``side`` pixels (nearest neighbour: what it sees, pixel for pixel)."""
    f = max(1, side // pixels.shape[0])
    return np.repeat(np.repeat(pixels, f, axis=0), f, axis=1)


def _upload_path(upload) -> str | None:
    """The cached file of an upload as the face input hands it over unprocessed (Gradio's FileData as a dict)."""
    return upload.get("path") if isinstance(upload, dict) else upload


def _discard(path: str | None, cache: str) -> None:
    """Delete a refused upload (and its folder, when empty) from Gradio's upload cache at once; never a file
    outside ``cache``."""
    if not path:
        return
    file, root = Path(path).resolve(), Path(cache).resolve()
    if not file.is_relative_to(root) or file == root:
        return
    file.unlink(missing_ok=True)
    if file.parent != root:
        with contextlib.suppress(OSError):  # not empty: the same bytes uploaded under another name live there
            file.parent.rmdir()


def _graph_line(session: ChatSession) -> str:
    g = session.graph
    provenance = ", ".join(f"{k} {v}" for k, v in sorted(g.provenance_counts().items()))
    return (f"Graph G: `{g.name}` — {len(g.class_edges())} AU→class and {len(g.au_edges())} AU→AU edges over "
            f"{len(g.classes)} classes; provenance: {provenance}")


class _Handlers:
    """The app's event handlers around one explainer; ``ui`` (the components, :func:`_layout`) is set once
    they exist. Every handler takes the session state first and returns it first."""

    def __init__(self, explainer: Explainer, gallery: list[tuple[np.ndarray, str]]):
        import gradio as gr

        self.gr, self.explainer, self.gallery = gr, explainer, gallery
        self.empty = (gr.update(), gr.update(), gr.update())
        self.reader = None  # the webcam's own front end: whole frames only (no tiles), so frames keep pace
        self.ui = None

    def session(self, state):
        return state if isinstance(state, ChatSession) else ChatSession(self.explainer)

    def show_face(self, face: Face, note, state):
        session = self.session(state)
        r = session.see(face.pixels, note, face=face.reading)
        label, bars, parents = _panels(session)
        shown = _seen_image(session)
        blind = not_seen_line(self.explainer, session.graph)
        intro = (f"I see **{r.predicted}** (p = {r.prob(r.predicted):.2f}); active AUs: "
                 f"{', '.join(r.active) or 'none'}. {note}.{' ' + blind if blind else ''}\n\n"
                 f"**Rationale** ({self.explainer.rationale_source}):\n\n")
        chat = [{"role": "assistant", "content": intro + "> ▌"}]
        yield session, shown, label, bars, parents, f"**Face:** {note}", chat, None
        text = ""
        for md, so_far in session.stream_rationale(r, intro):
            text = so_far  # the whole rationale once the stream ends
            chat = [{"role": "assistant", "content": md}]
            keep = self.gr.update()
            yield session, keep, keep, keep, keep, keep, chat, keep
        session.rationale = session.current_rationale = text
        chat = [{"role": "assistant", "content": intro + f"> {text}\n\nAsk me *why?*, *what if AU12 were absent?*, "
                                                         "*which AUs matter for sadness?*"}]
        # the whole state once more, for API callers
        yield session, shown, label, bars, parents, f"**Face:** {note}", chat, None

    def on_image(self, upload, as_crop, state):
        # ``upload`` is the uploaded file, not pixels: the event skips Gradio's preprocessing, which would decode
        # the whole picture (a 140 KB PNG can hold 12000x12000 pixels) before facr reads its size from the header
        if upload is None:
            yield state, self.gr.update(), *self.empty, self.gr.update(), self.gr.update(), self.gr.update()
            return
        path = _upload_path(upload)
        try:
            if not path:
                raise FaceError("your picture", "not an image (no file came with it)")
            face = self.explainer.prepare(path, detect=not as_crop, name="your picture")
        except FaceError as exc:
            _discard(path, self.ui.image.GRADIO_CACHE)
            yield state, None, *self.empty, f"**Error:** facr: {exc}", self.gr.update(), self.gr.update()
            return
        yield from self.show_face(face, face.note, state)

    def clear_refused(self, shown):
        """Empty the face input after a refusal (its file is gone), so the next picture can be dropped in."""
        return None if str(shown).startswith("**Error:**") else self.gr.update()

    def on_gallery(self, state, index: int):
        pixels, caption = self.gallery[index]
        try:
            face = self.explainer.prepare(pixels, detect=False, name=caption)
        except FaceError as exc:  # a front end that finds no face in a gallery picture
            yield state, self.gr.update(), *self.empty, f"**Error:** facr: {exc}", self.gr.update(), self.gr.update()
            return
        yield from self.show_face(face, f"gallery face {index} ({caption}, label shown for reference)", state)

    def on_frame(self, frame):
        if self.reader is None:
            from facr.frontends.mediapipe import MediaPipeFrontend

            self.reader = MediaPipeFrontend(self.explainer.aus, self.explainer.frontend.map, tiles=False)
        label, bars, line = live_reading(self.explainer, frame, self.reader)
        return label if label is not None else self.gr.update(), bars if bars is not None else self.gr.update(), line

    def on_ask(self, message, history, state):
        history = list(history or [])
        message = (message or "").strip()
        if not message:
            yield state, history, "", *self.empty, self.gr.update()
            return
        session = self.session(state)
        history.append({"role": "user", "content": message})
        history.append({"role": "assistant", "content": "…"})
        before = session.overlay
        for md in session.ask(message):
            history[-1] = {"role": "assistant", "content": md}
            yield session, history, "", *self.empty, self.gr.update()
        if session.current is not None:
            shown = session.overlay if session.overlay is not before else self.gr.update()
            yield session, history, "", *_panels(session), shown

    def on_graph(self, file, state):
        session = self.session(state)
        if file is None:
            return session, self.gr.update(), *self.empty
        path = file if isinstance(file, str) else getattr(file, "name", str(file))
        return self.use_graph(path, session, Path(path).name)

    def on_builtin(self, name):
        def handler(state):
            session = self.session(state)
            return self.use_graph(name, session, name)
        return handler

    def on_own(self, state):
        session = self.session(state)
        session.set_graph(self.explainer.graph)
        return session, _graph_line(session), *(_panels(session) if session.current else self.empty)

    def use_graph(self, spec, session, shown):
        from facr.graph import resolve_graph

        try:
            graph = resolve_graph(spec)
        except FacrError as exc:
            message = str(exc).replace(str(spec), shown) if str(spec) != shown else str(exc)
            return session, f"**Error:** facr: {message} — still using `{session.graph.name}`", *self.empty
        session.set_graph(graph)
        missing = [c for c in self.explainer.classes if c not in graph.classes]
        extra = f" (no parents for {', '.join(missing)})" if missing else ""
        return session, _graph_line(session) + extra, *(_panels(session) if session.current else self.empty)


def _layout(gr, explainer: Explainer, gallery: list, title: str):
    """The app's components, laid out inside the open Blocks: a namespace of the ones events use."""
    from types import SimpleNamespace

    frontend = explainer.frontend is not None
    state = gr.State(None)
    who = (f"front end MediaPipe FaceLandmarker ({explainer.frontend.map.info.get('name', 'fitted map')}) + AU "
           f"head `{explainer.model_path}`" if frontend else f"reasoner `{explainer.model_path}`")
    who += f", verbalizer `{explainer.verbalizer_path}`" if explainer.verbalizer_path else ", no verbalizer"
    gr.Markdown(f"## {title}\n{who}. Every what-if runs the one do(z_k = v) on the AU latent; "
                "Δ = ŷ − ŷ under do(z_k = 0).")
    if frontend:
        gr.Markdown(not_seen_line(explainer) + " The blendshape AUs are proxies, not calibrated FACS intensities; "
                    "the head learned AU → emotion from the benchmark's SCM, not from people.", elem_id="not-seen")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            image = gr.Image(label="Face (upload, webcam or paste)", sources=["upload", "webcam", "clipboard"],
                             type="filepath", height=260, elem_id="face-input")
            # a front end always finds the face itself
            as_crop = gr.Checkbox(label="already a face crop (skip detection)", value=False, visible=not frontend)
            status = gr.Markdown("Give a face, or pick one below.", elem_id="face-status")
            pick = gr.Gallery(value=gallery or None, label="Faces (click one)" if frontend else
                              "Benchmark faces (click one)", columns=4, height=200,
                              allow_preview=False, visible=bool(gallery), elem_id="gallery")
            if frontend:
                with gr.Accordion("Live webcam: emotion and AU bars per frame", open=False):
                    live = gr.Image(label="Webcam (streamed)", sources=["webcam"], streaming=True, type="numpy",
                                    height=200, elem_id="live")
                    live_status = gr.Markdown("Start the webcam to read it live.", elem_id="live-status")
                    live_probs = gr.Label(label="Live emotion", num_top_classes=3, elem_id="live-emotion")
                    live_bars = gr.Image(label="Live AU latent z", interactive=False, height=330,
                                         elem_id="live-bars")
        with gr.Column(scale=1, min_width=300):
            seen = gr.Image(label="What the model sees", interactive=False, height=160, elem_id="face-seen")
            probs = gr.Label(label="Stated emotion and class probabilities", num_top_classes=4,
                             elem_id="emotion")
            bars = gr.Image(label="AU latent z (active at z ≥ ½)", interactive=False, height=330,
                            elem_id="au-bars")
            parents = gr.Image(label="Parents of the predicted class in G (signed)", interactive=False,
                               height=260, elem_id="parents")
            where = gr.Image(label="Where the AU is seen (ask: where is AU12?)", interactive=False,
                             height=260, elem_id="where")
        with gr.Column(scale=2, min_width=360):
            chat = gr.Chatbot(label="Ask why and what if", height=520, elem_id="chat")
            ask = gr.Textbox(placeholder="why? · what if AU12 were absent? · which AUs matter for sadness?",
                             show_label=False, elem_id="ask", submit_btn=True)
            gr.Examples(EXAMPLES, inputs=ask)
            with gr.Accordion("Graph G", open=True):
                graph_status = gr.Markdown(_graph_line(ChatSession(explainer)), elem_id="graph-status")
                graph_file = gr.File(label="Use a facr-graph file (.json)", file_types=[".json"],
                                     elem_id="graph-file")
                with gr.Row():
                    emfacs = gr.Button("EMFACS graph", elem_id="use-emfacs")
                    own = gr.Button("The model's own graph", elem_id="use-own")
    made = {k: v for k, v in locals().items() if k not in ("gr", "explainer", "gallery", "title", "SimpleNamespace")}
    return SimpleNamespace(**made)  # every component made above, by its name


def build_app(explainer: Explainer, gallery: Sequence[tuple[np.ndarray, str]] = (), *,
              title: str = "facr — ask a face why"):
    """The Gradio Blocks app around ``explainer``; ``gallery``: (RGB array, caption) pairs to pick from."""
    import gradio as gr

    h = _Handlers(explainer, list(gallery))

    def on_gallery(state, evt: gr.SelectData):  # Gradio hands the event by this annotation
        yield from h.on_gallery(state, evt.index)

    with gr.Blocks(title=title, delete_cache=DELETE_CACHE) as app:
        ui = h.ui = _layout(gr, explainer, h.gallery, title)
        state, seen, probs, bars, parents, status, chat, where = (ui.state, ui.seen, ui.probs, ui.bars, ui.parents,
                                                                   ui.status, ui.chat, ui.where)
        face_out = [state, seen, probs, bars, parents, status, chat, where]
        # upload, webcam, paste: facr reads the file itself (preprocess=False), then clears a refused one
        ui.image.input(h.on_image, [ui.image, ui.as_crop, state], face_out, api_name="see", preprocess=False).then(
            h.clear_refused, [status], [ui.image], api_visibility="private")
        ui.pick.select(on_gallery, [state], face_out, api_name="gallery")
        if ui.frontend:
            ui.live.stream(h.on_frame, [ui.live], [ui.live_probs, ui.live_bars, ui.live_status], stream_every=0.25,
                           concurrency_limit=1, api_name="live")
        ui.ask.submit(h.on_ask, [ui.ask, chat, state], [state, chat, ui.ask, probs, bars, parents, where],
                      api_name="ask")
        graph_out = [state, ui.graph_status, probs, bars, parents]
        ui.graph_file.upload(h.on_graph, [ui.graph_file, state], graph_out, api_name="graph")
        ui.emfacs.click(h.on_builtin("emfacs"), [state], graph_out, api_name="emfacs")
        ui.own.click(h.on_own, [state], graph_out, api_name="own_graph")
    return app


DESCRIPTION = ("Give a face (upload, webcam, gallery), see the emotion, the AU latent and the parents of the "
               "predicted class in G, and ask why, what if AU12 were absent, which AUs matter for sadness; swap G for "
               "a verified graph file. With no flags it loads what `make demo` wrote in demo-out/, or, when there is "
               "nothing there, runs on real faces: MediaPipe's front end and the shipped real-face head "
               "(--frontend mediapipe).")
EPILOG = ("example:\n  facr chat                       # the checkpoints `make demo` wrote under demo-out/\n"
          "  facr chat --model runs/reasoner --verbalizer runs/verbalizer --graph emfacs --port 7861\n"
          "  facr chat --frontend mediapipe  # real photos and the webcam: MediaPipe + the shipped real-face head\n"
          "  facr chat --frontend mediapipe --model runs/head   # a head from `facr train head`")
FALLBACK = ("facr chat: no demo checkpoints in demo-out/ (`make demo` trains them): running on real faces with "
            "MediaPipe's front end and the shipped real-face head (--frontend mediapipe)")


def launch(app, host: str = HOST, port: int = 0, *, share: bool = False, block: bool = True) -> None:
    """Serve ``app`` on ``host``:``port`` (0: a free one) with facr's limits: Gradio refuses an upload over
    ``MAX_BYTES`` before it reaches the cache (413; the browser refuses it before sending). ``block=False``
    returns once it serves (tests)."""
    app.queue().launch(server_name=host, server_port=port or free_port(host), share=share, inbrowser=False,
                       quiet=True, show_error=True, max_file_size=MAX_BYTES, prevent_thread_lock=not block)


def build_parser() -> argparse.ArgumentParser:
    """``python app/app.py``'s parser: the same flags and text as ``facr chat``."""
    p = argparse.ArgumentParser(prog="python app/app.py", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="reasoner checkpoint (run folder or model/); default: the verbalizer's reasoner, "
                                   "else demo-out's FACR model. With --frontend: an AU head folder (facr train head; "
                                   "default: the shipped real-face head)")
    p.add_argument("--frontend", choices=FRONTENDS, default=None,
                   help="read real photos through this front end and an AU head instead of a pixel reasoner "
                        "(default: off, unless demo-out/ holds no checkpoints and no --model/--verbalizer is given)")
    p.add_argument("--verbalizer",
                   help="verbalizer checkpoint (run folder or verbalizer/); default: demo-out/verbalizer")
    p.add_argument("--no-verbalizer", action="store_true",
                   help="no language model: rationales are read off the intervention effects")
    p.add_argument("--graph", help="facr-graph file or built-in name (emfacs, pspi) to explain against; "
                                   "default: the reasoner's own G")
    p.add_argument("--data", default=None,
                   help=f"dataset whose test faces fill the gallery (default: {DEMO_DATA} when it exists)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port on {HOST} (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    p.add_argument("--host", default=HOST, help=f"address to bind (default {HOST}: this machine only)")
    p.add_argument("--check", action="store_true",
                   help="load everything, answer 'why?' on the first gallery face, print it and exit (no server)")


def run(args) -> int:
    """Load, build and serve (or ``--check``); the one entry point of ``facr chat`` and ``app/app.py``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise FacrError(None, f"--port must be in 0..65535, got {args.port}")
    frontend = getattr(args, "frontend", None)
    if frontend is None and args.model is None and args.verbalizer is None and not _demo_present():
        print(FALLBACK, flush=True)
        frontend = "mediapipe"
    if frontend is not None:
        explainer = Explainer.load_frontend(frontend, args.model, None if args.no_verbalizer else args.verbalizer,
                                            args.graph)
    else:
        explainer = Explainer.load(args.model, args.verbalizer, args.graph, use_verbalizer=not args.no_verbalizer)
    data = args.data if args.data is not None else (str(DEMO_DATA) if DEMO_DATA.exists() and not frontend else None)
    if args.data is not None and not Path(args.data).exists():
        raise FacrError(args.data, "no such dataset folder")
    gallery = gallery_samples(data, explainer.classes)
    if frontend and data is None:
        from facr.chat.realface import real_photos

        gallery = real_photos()
    if args.check:
        if not gallery:
            raise FacrError(data, "--check needs gallery faces (--data)")
        session = ChatSession(explainer)
        pixels, caption = gallery[0]
        face = explainer.prepare(pixels, detect=False, name=caption)
        session.see(face.pixels, face.note, face=face.reading)
        *_, answer = session.ask("why?")
        print(f"gallery face 0 ({caption}):\n{answer}")
        return 0
    app = build_app(explainer, gallery)
    port = args.port or free_port(args.host)
    what = f"front end {frontend} + AU head" if frontend else "reasoner"
    print(f"facr chat: {what} {explainer.model_path}, verbalizer {explainer.verbalizer_path or '-'}, "
          f"graph {explainer.graph.name}, {len(gallery)} gallery faces", flush=True)
    if frontend:
        print(f"facr chat: {not_seen_line(explainer)}", flush=True)
    print(f"facr chat: open http://{args.host}:{port} (Ctrl-C stops it)", flush=True)
    launch(app, args.host, port, share=args.share)
    return 0


def _demo_present() -> bool:
    """Whether ``make demo``'s checkpoints (its reasoner or its verbalizer) are under demo-out/."""
    from facr.audit.auditors import reasoner_folder
    from facr.audit.rationale import verbalizer_folder

    return reasoner_folder(str(DEMO_MODEL)) is not None or verbalizer_folder(str(DEMO_VERBALIZER)) is not None


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except FacrError as exc:
        print(f"facr: {exc}", file=sys.stderr)
        return 2
