"""``facr emola generate --model emola``: a user's EmoLA checkout and weights, run on faces.

EmoLA (JackYFL/EmoLA, "Facial Affective Behavior Analysis with Instruction Tuning", ECCV 2024) is
LLaVA-1.5-7B + LoRA + one landmark token: 212 numbers from InsightFace's ``2d106det.onnx`` projected
into the LLM. It needs torch 2.0.1 / transformers 4.31 / peft 0.4.0, which facr's own environment
cannot hold, so facr prepares EmoLA's inputs here and runs :mod:`facr.external.emola_driver` (a
stand-alone script) with the user's EmoLA python, cwd = the checkout, one process per question:

1. :func:`check_checkout` / :func:`check_checkpoint`: the two blockers in EmoLA's released code and
   the checkpoint mistakes that would otherwise fail an hour into a GPU job, or not fail at all
   (a missing ``landmark_feature_projector.bin`` leaves a random projector, silently);
2. :func:`prepare_inputs`: the faces as PNGs, their 212-float landmark features computed with
   EmoLA's recipe (:func:`landmark_features`), and one FABA-style annotation list per question;
3. the driver answers each item (greedy by default) into a JSONL it resumes from;
4. :func:`generate_emola` joins the answers back to the records as rows of the generations file
   (:mod:`facr.external.generations`).

Everything the driver writes lives under ``workdir``: pass the same folder again to resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from facr.errors import FacrError
from facr.external.generations import PROMPTS, generation_row, image_of, record_key

DRIVER = Path(__file__).with_name("emola_driver.py")
"""The script run with EmoLA's python (standard library + EmoLA's environment, no facr imports)."""

LANDMARK_ONNX = "feature_extraction/landmark/2d106det.onnx"
LANDMARK_SIZE = 192  # 2d106det's input side
LANDMARK_DIM = 212  # 106 (x, y) pairs; EmoLA's landmark_feature_hidden_size
TASKS = ("au", "emotion")
WORK_KIND = "emola-work"  # the marker kind of a --workdir (facr.outputs)
ANNOTATION_FILES = {"au": "eval_au_anno.json", "emotion": "eval_emotion_anno.json"}
# EmoLA's eval parser reads label and gpt4 for every item (eval_FABA.py:320-322) and scores
# them; facr never uses those scores, so the labels are placeholders EmoLA parses without error
# ("" -> no AU; 4 = neutral) and gpt4 is non-empty text for its ROUGE call.
DUMMY_LABEL = {"au": "", "emotion": 4}
DUMMY_GPT4 = "No reference text: placeholder written by facr."

_CHECKOUT_FILES = ("emollava/model/builder.py", "llava/model/__init__.py",
                   "llava/model/multimodal_encoder/clip_encoder.py", "llava/conversation.py",
                   "llava/mm_utils.py", "llava/constants.py")
_CLONE = "git clone https://github.com/JackYFL/EmoLA"


# ------------------------------------------------------------------ preflight
def _code_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FacrError(path, f"cannot read: {exc}") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if not line.lstrip().startswith("#")]


def check_checkout(repo: str | os.PathLike) -> Path:
    """Preflight of an EmoLA checkout; returns its resolved path.

    Raises :class:`FacrError` naming the file, with the fix, for: a path that is not an EmoLA
    checkout; the import of the deleted ``llava_query_llama`` in ``llava/model/__init__.py``
    (blocker 1: every ``import llava`` fails); the authors' hard-coded ``/home/liyifa11`` CLIP path
    in ``llava/model/multimodal_encoder/clip_encoder.py`` (blocker 2); a missing or empty
    ``feature_extraction/landmark/2d106det.onnx``.
    """
    root = Path(repo).expanduser()
    if not root.is_dir():
        raise FacrError(root, f"not a folder; pass your EmoLA checkout ({_CLONE})")
    if not (root / "emollava/eval/eval_FABA.py").is_file():
        raise FacrError(root, f"not an EmoLA checkout (no emollava/eval/eval_FABA.py); pass the folder of {_CLONE}")
    for rel in _CHECKOUT_FILES:
        if not (root / rel).is_file():
            raise FacrError(root / rel, f"missing: an incomplete EmoLA checkout ({_CLONE} again)")

    init = root / "llava/model/__init__.py"
    if not (root / "llava/model/language_model/llava_query_llama.py").is_file():
        for n, line in _code_lines(init):
            if re.search(r"\bllava_query_llama\b", line):
                raise FacrError(init, f"line {n} imports llava_query_llama, which EmoLA deleted (commit 03a9f72), "
                                      f"so every `import llava` fails: delete line {n} ({line.strip()!r})")

    clip = root / "llava/model/multimodal_encoder/clip_encoder.py"
    for n, line in _code_lines(clip):
        m = re.search(r"""["'](/home/liyifa11[^"']*)["']""", line)
        if m and not Path(m.group(1)).exists():
            raise FacrError(clip, f"line {n} loads CLIP from the authors' path {m.group(1)!r}: replace that argument "
                                  "of CLIPVisionModel.from_pretrained(...) with self.vision_tower_name (the "
                                  "checkpoint's openai/clip-vit-large-patch14-336), or put a copy of "
                                  "openai/clip-vit-large-patch14-336 at that path")

    onnx = root / LANDMARK_ONNX
    if not onnx.is_file() or onnx.stat().st_size == 0:
        raise FacrError(onnx, "missing: EmoLA's landmark model (InsightFace 2d106det, tracked in the repository; "
                              "re-clone, or copy 2d106det.onnx from InsightFace's buffalo_l pack here)")
    return root.resolve()


def emola_model_name(model_path: str | os.PathLike) -> str:
    """The name EmoLA's loader sees (``llava.mm_utils.get_model_name_from_path``): the folder's
    last component, or ``<parent>_checkpoint-N``. Symlinks are not followed, as in EmoLA."""
    parts = os.path.abspath(os.fspath(model_path)).strip("/").split("/")
    return f"{parts[-2]}_{parts[-1]}" if parts[-1].startswith("checkpoint-") and len(parts) > 1 else parts[-1]


def check_checkpoint(model_path: str | os.PathLike, model_base: str | os.PathLike | None) -> None:
    """Preflight of an EmoLA LoRA checkpoint and its LLaVA-1.5-7B base.

    Raises :class:`FacrError` for: a missing checkpoint folder or file (``config.json``,
    ``adapter_config.json``, the adapter weights, ``non_lora_trainables.bin``,
    ``landmark_feature_projector.bin``: without the last EmoLA silently keeps a random landmark
    projector); a folder name without ``llava``, ``lora`` and ``v1`` (EmoLA's builder takes the
    LoRA path only for names with ``llava`` and ``lora``, and picks the ``llava_v1`` prompt by
    ``v1``); a missing base folder.
    """
    ckpt = Path(model_path).expanduser()
    if not ckpt.is_dir():
        raise FacrError(ckpt, "no such EmoLA checkpoint folder (the LoRA folder, e.g. llava-v1.5-7b-lora-emola-au)")
    name = emola_model_name(ckpt)
    lacking = [s for s in ("llava", "lora", "v1") if s not in name.lower()]
    if lacking:
        raise FacrError(ckpt, f"EmoLA chooses its loader and prompt by the folder name, which must contain 'llava', "
                              f"'lora' and 'v1' (it lacks {', '.join(repr(s) for s in lacking)}): rename the folder "
                              "or link it under a name like llava-v1.5-7b-lora-emola-au")
    for rel, why in (("config.json", "the model config"), ("adapter_config.json", "the LoRA config"),
                     ("non_lora_trainables.bin", "the projector weights; EmoLA would look for it on the HF Hub")):
        if not (ckpt / rel).is_file():
            raise FacrError(ckpt / rel, f"missing ({why}): download the whole checkpoint folder")
    if not any((ckpt / f).is_file() for f in ("adapter_model.bin", "adapter_model.safetensors")):
        raise FacrError(ckpt / "adapter_model.bin", "missing (the LoRA weights): download the whole checkpoint folder")
    if not (ckpt / "landmark_feature_projector.bin").is_file():
        raise FacrError(ckpt / "landmark_feature_projector.bin",
                        "missing: without it EmoLA silently keeps a randomly initialised landmark projector; "
                        "download the whole checkpoint folder")
    if model_base is None:
        raise FacrError(ckpt, "EmoLA's checkpoints are LoRA adapters: pass --model-base, the LLaVA-1.5-7B folder "
                              "(liuhaotian/llava-v1.5-7b)")
    base = Path(model_base).expanduser()
    if not base.is_dir():
        raise FacrError(base, "no such base model folder: download liuhaotian/llava-v1.5-7b and pass its folder")
    if not (base / "config.json").is_file():
        raise FacrError(base / "config.json",
                        "missing: the base folder must be LLaVA-1.5-7B (liuhaotian/llava-v1.5-7b)")


# ------------------------------------------------------------------ landmark features
def _resize_coeffs(src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    # OpenCV computes each source position in float32 from a float64 scale (resize.cpp, resize()).
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    return s, (f - s.astype(np.float32)).astype(np.float32)


def _fixed(w: np.ndarray) -> np.ndarray:
    # saturate_cast<short>(w * INTER_RESIZE_COEF_SCALE), rounding half to even like cvRound
    return np.rint(w.astype(np.float32) * np.float32(2048)).astype(np.int64)


def resize_linear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize(image, (width, height))`` (``INTER_LINEAR``) for a ``uint8`` ``HxWxC`` array,
    bit-exact, in NumPy.

    OpenCV's 8-bit bilinear path works in fixed point: 11-bit weights, a horizontal pass into
    int32, then a vertical pass that shifts by 4, multiplies by the weight keeping the high 16
    bits, and rounds with ``(x + 2) >> 2``; an exact 2x downscale is routed to the 2x2 box
    average. Rows beyond the border are clamped, columns get their weight moved to the edge.
    Checked equal to opencv-python-headless 4.8.1, 4.10.0 and 5.0.0 on 450 random sizes.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"expected an HxWxC uint8 array, got {img.dtype} {img.shape}")
    h_src, w_src = img.shape[:2]
    sx_scale, sy_scale = 1.0 / (width / w_src), 1.0 / (height / h_src)
    eps = np.finfo(np.float64).eps
    if (abs(sx_scale - round(sx_scale)) < eps and abs(sy_scale - round(sy_scale)) < eps
            and round(sx_scale) == 2 and round(sy_scale) == 2):
        x = img[: 2 * height, : 2 * width].astype(np.int32)
        return ((x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2] + 2) >> 2).astype(np.uint8)
    sx, fx = _resize_coeffs(w_src, width)
    edge = (sx < 0) | (sx >= w_src - 1)
    fx[edge] = 0
    sx = np.clip(sx, 0, w_src - 1)
    a0, a1 = _fixed(np.float32(1) - fx), _fixed(fx)
    sx1 = np.minimum(sx + 1, w_src - 1)
    sy, fy = _resize_coeffs(h_src, height)
    b0, b1 = _fixed(np.float32(1) - fy), _fixed(fy)
    x = img.astype(np.int64)
    rows = x[:, sx] * a0[None, :, None] + x[:, sx1] * a1[None, :, None]  # [H_src, width, C]
    d0 = np.clip(rows[np.clip(sy, 0, h_src - 1)] >> 4, -32768, 32767)
    d1 = np.clip(rows[np.clip(sy + 1, 0, h_src - 1)] >> 4, -32768, 32767)
    t = ((d0 * b0[:, None, None]) >> 16) + ((d1 * b1[:, None, None]) >> 16)
    return np.clip((t + 2) >> 2, 0, 255).astype(np.uint8)


def landmark_input(image) -> np.ndarray:
    """One face as 2d106det's input in EmoLA's recipe (``feature_extraction/landmark/
    landmark_features.py``): the whole image (no detection or crop), BGR like ``cv2.imread``,
    bilinear-resized to 192x192 (:func:`resize_linear`), ``/ 255``, NCHW ``[1, 3, 192, 192]``
    float32. It is not InsightFace's own preprocessing (RGB, face crop, mean/std); EmoLA's model
    was trained on this one."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    x = resize_linear(bgr, LANDMARK_SIZE, LANDMARK_SIZE).astype(np.float32) / 255.0
    return np.transpose(x, (2, 0, 1))[None]


class LandmarkModel:
    """2d106det in onnxruntime (CPU): ``model(image) -> [212] float32`` (EmoLA's
    ``np.squeeze(output[0][0])``)."""

    def __init__(self, onnx_path: str | os.PathLike):
        self.path = Path(onnx_path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise FacrError(self.path, "computing EmoLA's landmark features needs onnxruntime: "
                                       "pip install onnxruntime") from None
        if not self.path.is_file():
            raise FacrError(self.path, "no such ONNX model (EmoLA's feature_extraction/landmark/2d106det.onnx)")
        state = ort.capi.onnxruntime_pybind11_state
        ort_errors = tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except (RuntimeError, ValueError, *ort_errors) as exc:
            raise FacrError(self.path, f"onnxruntime cannot load it: {exc}") from None
        # EmoLA names the input onnx.load(path).graph.input[0].name; onnxruntime lists the same
        # first data input without the extra dependency on the onnx package.
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, image) -> np.ndarray:
        out = self.session.run(None, {self.input_name: landmark_input(image)})
        feat = np.squeeze(np.array(out[0][0])).astype(np.float32)
        if feat.shape != (LANDMARK_DIM,):
            raise FacrError(self.path, f"gave {feat.size} values per face; EmoLA's landmark projector takes "
                                       f"{LANDMARK_DIM} (2d106det's 106 (x, y) pairs)")
        return feat


def landmark_features(images: Sequence, onnx_path: str | os.PathLike) -> np.ndarray:
    """``[N, 212]`` float32: EmoLA's landmark feature of each PIL image (:func:`landmark_input`,
    then 2d106det in onnxruntime, one face per run as EmoLA's batch-size-1 loader does)."""
    model = LandmarkModel(onnx_path)
    feats = [model(im) for im in images]
    return np.stack(feats) if feats else np.zeros((0, LANDMARK_DIM), np.float32)


# ------------------------------------------------------------------ EmoLA's inputs
def _input_name(key: str) -> str:
    """A record key as a relative POSIX path under the data dir, ending in .png."""
    parts = [p for p in PurePosixPath(key.replace("\\", "/")).parts if p not in ("/", "", ".")]
    rel = "/".join("__" if p == ".." else p for p in parts) or "face"
    return rel if rel.lower().endswith(".png") else rel + ".png"


def prepare_inputs(records: Sequence, root: str | os.PathLike | None, workdir: str | os.PathLike,
                   onnx_path: str | os.PathLike, tasks: Iterable[str] = TASKS) -> Path:
    """Write EmoLA's inputs for ``records`` under ``workdir/data``; returns that data dir.

    * ``images/<record key>[.png]``: each face as a PNG (decoded once, by facr; EmoLA's own
      ``Image.open(...).convert('RGB')`` then sees exactly the pixels the landmarks came from);
    * ``landmarks/<record key>.npy``: its 212-float feature (:func:`landmark_features`);
    * ``eval_<task>_anno.json`` per task: the JSON list EmoLA's eval reads, one item per record in
      order, ``{"image", "landmark", "label", "gpt4"}`` with paths relative to the data dir and
      placeholder ``label`` / ``gpt4`` (:data:`DUMMY_LABEL`, :data:`DUMMY_GPT4`), plus ``sha1``
      (of the pixels and the landmark feature; EmoLA ignores it) so that the driver resumes only
      answers about the same face;
    * ``index.json``: list position -> ``{"index", "key", "image", "landmark"}``.
    """
    from facr.utils import atomic_path, write_json

    tasks = list(tasks)
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"tasks: {t!r} is not one of {TASKS}")
    data = Path(workdir) / "data"
    data.mkdir(parents=True, exist_ok=True)
    model = LandmarkModel(onnx_path)
    index, items = [], []
    for i, r in enumerate(records):
        key = record_key(r, root)
        rel = _input_name(key)
        image_rel, landmark_rel = f"images/{rel}", f"landmarks/{rel[:-4]}.npy"
        image = image_of(r)
        feature = model(image)
        with atomic_path(data / image_rel) as tmp:
            image.save(tmp, format="PNG")
        with atomic_path(data / landmark_rel) as tmp, open(tmp, "wb") as f:
            np.save(f, feature)
        pixels = np.asarray(image)
        sha1 = hashlib.sha1(repr(pixels.shape).encode() + pixels.tobytes() + feature.tobytes()).hexdigest()[:16]
        index.append({"index": i, "key": key, "image": image_rel, "landmark": landmark_rel})
        items.append({"image": image_rel, "landmark": landmark_rel, "sha1": sha1})
    for t in tasks:
        write_json(data / ANNOTATION_FILES[t],
                   [dict(item, label=DUMMY_LABEL[t], gpt4=DUMMY_GPT4) for item in items])
    write_json(data / "index.json", index)
    return data


# ------------------------------------------------------------------ running the driver
def _read_answers(path: Path, annotations: list[dict]) -> dict[int, str]:
    """index -> answer from the driver's JSONL: the last line per index made for the item at that
    position now (same ``sha1``; lines of an older, different input list are ignored, like the
    driver's resume)."""
    answers: dict[int, str] = {}
    if not path.is_file():
        return answers
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(raw)
        except ValueError:
            continue  # a line cut short by a crash; the driver redoes it
        i = obj.get("index") if isinstance(obj, dict) else None
        if (isinstance(i, int) and 0 <= i < len(annotations) and isinstance(obj.get("output"), str)
                and obj.get("item") == annotations[i].get("sha1", annotations[i]["image"])):
            answers[i] = obj["output"]
    return answers


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else "(empty log)"


def _run_driver(cmd: list[str], cwd: Path, log: Path, out: Path, n_items: int, task: str, progress: bool) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_items, desc=f"EmoLA {task}", unit="face", dynamic_ncols=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "a", encoding="utf-8") as logf:
        logf.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        logf.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            if bar is not None:
                bar.close()
            raise FacrError(cmd[0], f"cannot run EmoLA's python: {exc}") from None
        try:
            while True:
                try:
                    proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if bar is not None:
                    bar.n = min(n_items, _count_lines(out))
                    bar.refresh()
        finally:
            if proc.poll() is None:  # interrupted: stop the GPU job we started
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if bar is not None:
                bar.n = min(n_items, _count_lines(out))
                bar.close()
    if proc.returncode != 0:
        raise FacrError(log, f"the EmoLA driver ({task} question) exited with {proc.returncode}: {_last_line(log)}")


def _abs(path: str | os.PathLike) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _run_tag(settings: dict) -> str:
    """A short hash of what decides the answers: resume reuses only answers made the same way."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def generate_emola(repo: str | os.PathLike, model_path: str | os.PathLike, model_base: str | os.PathLike | None,
                   records: Sequence, root: str | os.PathLike | None, *,
                   emotion_model_path: str | os.PathLike | None = None, python: str = "python",
                   load_in_4bit: bool = False, workdir: str | os.PathLike | None = None,
                   max_new_tokens: int = 512, sample: bool = False, device: str = "cuda",
                   progress: bool = False, source: str = "") -> list[dict]:
    """Run EmoLA on ``records``; one generations row per record, in order.

    ``model_path`` answers EmoLA's AU question (:data:`PROMPTS` ``au``), ``emotion_model_path``
    (when given) its emotion question; both are LoRA folders over ``model_base`` (LLaVA-1.5-7B).
    ``python`` is the interpreter of EmoLA's environment. Decoding is greedy unless ``sample``
    (EmoLA's own ``top_p=0.5, temperature=0.01``, seeded per item); ``load_in_4bit`` loads NF4 with
    the LoRA left unmerged (see :mod:`facr.external.emola_driver`). ``workdir`` keeps inputs,
    answers and logs: the same folder resumes an interrupted run. Without one, a temporary folder
    is used and removed on success (kept, and named in the error, on failure). ``device`` is the
    device EmoLA's builder is given; EmoLA runs fp16 on CUDA only, other values are for tests.

    Rows: ``{"image": record key, "output": AU answer, "emotion_output": emotion answer (when
    run), "emotion": label (when known), "aus": labelled active AUs (when any AU is coded),
    "source": source}``.
    """
    repo = check_checkout(repo)
    check_checkpoint(model_path, model_base)
    runs = [("au", model_path)]
    if emotion_model_path is not None:
        check_checkpoint(emotion_model_path, model_base)
        runs.append(("emotion", emotion_model_path))
    exe = shutil.which(os.path.expanduser(python))
    if exe is None:
        raise FacrError(python, "no such python: pass --emola-python, the python of EmoLA's environment "
                                "(e.g. ~/miniconda3/envs/emola/bin/python)")
    exe = os.path.abspath(exe)  # the driver runs with cwd = the checkout; never resolve a venv's symlink
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    records = list(records)
    if not records:
        raise FacrError(root, "no faces to run EmoLA on")

    temporary = workdir is None
    work = Path(tempfile.mkdtemp(prefix="facr-emola-")) if temporary else Path(workdir)
    if not temporary:  # a folder of facr's EmoLA work (resumed), never one of yours nor an input
        from facr.outputs import check_target, write_marker

        check_target(work, WORK_KIND, resume=True, inputs=[root, repo, model_path, model_base, emotion_model_path])
    work.mkdir(parents=True, exist_ok=True)
    if not temporary:
        write_marker(work, WORK_KIND)
    data = prepare_inputs(records, root, work, repo / LANDMARK_ONNX, [t for t, _ in runs])
    index = json.loads((data / "index.json").read_text(encoding="utf-8"))

    texts: dict[str, dict[int, str]] = {}
    for task, ckpt in runs:
        ann = data / ANNOTATION_FILES[task]
        annotations = json.loads(ann.read_text(encoding="utf-8"))
        settings = {"model_path": _abs(ckpt), "model_base": _abs(model_base),
                    "question": PROMPTS[task], "load_in_4bit": bool(load_in_4bit), "sample": bool(sample),
                    "max_new_tokens": int(max_new_tokens)}
        tag = _run_tag(settings)
        out = work / "out" / f"{task}-{tag}.jsonl"
        log = work / "logs" / f"{task}-{tag}.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        # Model paths stay unresolved (abspath, not resolve): EmoLA reads the folder *name*, and a
        # symlink is the documented way to give a checkpoint the name it needs.
        cmd = [exe, str(DRIVER), "--repo", str(repo), "--model-path", settings["model_path"],
               "--model-base", settings["model_base"], "--ann-file", str(ann.resolve()),
               "--data-dir", str(data.resolve()), "--question", PROMPTS[task], "--out", str(out.resolve()),
               "--max-new-tokens", str(int(max_new_tokens)), "--device", device]
        if load_in_4bit:
            cmd.append("--load-in-4bit")
        if sample:
            cmd.append("--sample")
        _run_driver(cmd, repo, log, out, len(annotations), task, progress)
        answers = _read_answers(out, annotations)
        missing = [i for i in range(len(annotations)) if i not in answers]
        if missing:
            raise FacrError(out, f"the driver finished but left {len(missing)} of {len(annotations)} faces "
                                 f"unanswered (first: {index[missing[0]]['key']}); see {log}")
        texts[task] = answers

    rows = [generation_row(index[i]["key"], r, output=texts["au"][i], source=source,
                           emotion_output=texts["emotion"][i] if "emotion" in texts else None)
            for i, r in enumerate(records)]
    if temporary:
        shutil.rmtree(work, ignore_errors=True)
    return rows


__all__ = ["DRIVER", "LandmarkModel", "check_checkout", "check_checkpoint", "emola_model_name", "generate_emola",
           "landmark_features", "landmark_input", "prepare_inputs", "resize_linear"]
