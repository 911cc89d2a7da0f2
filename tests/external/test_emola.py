"""facr's EmoLA runner: preflight, landmark features, EmoLA's input files, and the driver.

Nothing here runs EmoLA. The driver tests run ``facr/external/emola_driver.py`` against a FAKE
EmoLA checkout written below (``FAKE_MODULES``): modules with the names and signatures the driver
uses (``emollava.model.builder.load_pretrained_model``, ``llava.conversation``,
``llava.mm_utils``, ``llava.constants``, ``llava.utils``), backed by a pure-Python stand-in model
whose "answer" is a JSON echo of what it was given (the prompt, the landmark vector, the image).
They are interface tests of facr's driver and of how facr joins its answers back to records,
not tests of EmoLA.
"""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

# cv2, onnx and onnxruntime: the test extra installs them (make test), so a missing one is a failure, not a skip
import cv2
import numpy as np
import onnx
import onnxruntime  # noqa: F401  imported so its absence fails here, not deep inside facr.external.emola
import pytest
from PIL import Image

from facr.data.records import FaceRecord
from facr.errors import FacrError
from facr.external import emola
from facr.external.generations import PROMPTS

# A fixed 3 x 212 matrix with distinct rows, so a B/R swap changes every output.
W = np.stack([np.linspace(0.0, 1.0, 212), np.linspace(1.0, -1.0, 212) ** 2,
              np.cos(np.arange(212) / 7.0)]).astype(np.float32)


def tiny_landmark_onnx(path: Path) -> Path:
    """A stand-in for 2d106det with the same interface: [1,3,192,192] -> [1,212]
    (per-channel mean, then a fixed 3x212 matrix)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["data"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["m", "W"], ["fc1"])],
        "tiny2d106det",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 212])],
        [numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def expected_feature(rgb: np.ndarray) -> np.ndarray:
    """EmoLA's recipe recomputed for the tiny model: BGR, 192x192, /255, channel means @ W."""
    bgr = rgb[..., ::-1]
    if bgr.shape[:2] != (192, 192):
        bgr = emola.resize_linear(np.ascontiguousarray(bgr), 192, 192)
    x = bgr.astype(np.float32) / 255.0
    return x.mean(axis=(0, 1), dtype=np.float64) @ W.astype(np.float64)


def face(seed: int, h: int = 192, w: int = 192) -> np.ndarray:
    """An RGB face stand-in with clearly different R, G and B."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = rng.integers(150, 256, (h, w))  # red-heavy
    img[..., 1] = rng.integers(60, 120, (h, w))
    img[..., 2] = rng.integers(0, 40, (h, w)) + seed  # blue differs per face
    return img


# ------------------------------------------------------------------ fake checkout
BLOCKED_INIT = """\
from .language_model.llava_llama import LlavaLlamaForCausalLM, LlavaConfig
from .language_model.llava_mpt import LlavaMPTForCausalLM, LlavaMPTConfig
from .language_model.llava_query_llama import LlavaLlamaForCausalLMDeepQuery
"""
BLOCKED_CLIP = """\
    def load_model(self):
        self.image_processor = CLIPImageProcessor.from_pretrained(self.vision_tower_name)
        # self.vision_tower = CLIPVisionModel.from_pretrained(self.vision_tower_name)
        self.vision_tower = CLIPVisionModel.from_pretrained(
            '/home/liyifa11/MyCodes/EmoDQ/EmoDQ/checkpoints/clip-vit-large-patch14-336')
"""

FAKE_MODULES = {
    "emollava/__init__.py": "",
    "emollava/eval/eval_FABA.py": "# stand-in: facr only checks that this file exists\n",
    "emollava/model/__init__.py": "",
    "llava/__init__.py": "",
    "llava/model/language_model/__init__.py": "",
    "llava/constants.py": """\
        IGNORE_INDEX = -100
        IMAGE_TOKEN_INDEX = -200
        DEFAULT_IMAGE_TOKEN = "<image>"
        DEFAULT_IM_START_TOKEN = "<im_start>"
        DEFAULT_IM_END_TOKEN = "<im_end>"
        """,
    "llava/utils.py": """\
        def disable_torch_init():
            pass
        """,
    "llava/conversation.py": """\
        import dataclasses
        from enum import Enum, auto


        class SeparatorStyle(Enum):
            SINGLE = auto()
            TWO = auto()


        @dataclasses.dataclass
        class Conversation:
            system: str
            roles: tuple
            messages: list
            sep_style: SeparatorStyle
            sep: str
            sep2: str = None

            def append_message(self, role, message):
                self.messages.append([role, message])

            def copy(self):
                return Conversation(self.system, self.roles, [list(m) for m in self.messages],
                                    self.sep_style, self.sep, self.sep2)

            def get_prompt(self):
                if self.sep_style == SeparatorStyle.TWO:
                    seps = [self.sep, self.sep2]
                    ret = self.system + seps[0]
                    for i, (role, message) in enumerate(self.messages):
                        ret += role + ": " + message + seps[i % 2] if message else role + ":"
                    return ret
                ret = self.system + self.sep
                for role, message in self.messages:
                    ret += role + ": " + message + self.sep if message else role + ":"
                return ret


        conv_templates = {
            "llava_v1": Conversation(
                "A chat between a curious human and an artificial intelligence assistant. "
                "The assistant gives helpful, detailed, and polite answers to the human's questions.",
                ("USER", "ASSISTANT"), [], SeparatorStyle.TWO, " ", "</s>"),
            "llava_v0": Conversation("v0 system", ("Human", "Assistant"), [], SeparatorStyle.SINGLE, "###"),
        }
        """,
    "llava/mm_utils.py": """\
        import torch


        def tokenizer_image_token(prompt, tokenizer, image_token_index=-200, return_tensors=None):
            chunks = [tokenizer(c).input_ids for c in prompt.split("<image>")]
            ids, offset = [], 0
            if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
                offset = 1
                ids.append(chunks[0][0])
            for k, chunk in enumerate(chunks):
                if k:
                    ids.append(image_token_index)
                ids.extend(chunk[offset:])
            return torch.tensor(ids, dtype=torch.long) if return_tensors == "pt" else ids


        def get_model_name_from_path(model_path):
            parts = model_path.strip("/").split("/")
            return parts[-2] + "_" + parts[-1] if parts[-1].startswith("checkpoint-") else parts[-1]


        class KeywordsStoppingCriteria:
            def __init__(self, keywords, tokenizer, input_ids):
                self.keywords = keywords
        """,
    "emollava/model/builder.py": """\
        # Stand-in for EmoLA's builder: a character tokenizer and a "model" that answers with a JSON
        # echo of its inputs. Files in the checkpoint folder steer it: crash_on_load, crash_after (N).
        import json
        import os
        import types

        import numpy as np
        import torch


        class Tokenizer:
            bos_token_id = 1

            def __call__(self, text):
                return types.SimpleNamespace(input_ids=[1] + [ord(c) for c in text])

            def batch_decode(self, ids, skip_special_tokens=True):
                return ["".join("<image>" if t == -200 else chr(t) for t in row.tolist() if t == -200 or t > 2)
                        for row in ids]


        class ImageProcessor:
            def preprocess(self, image, return_tensors="pt"):
                x = torch.tensor(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
                return {"pixel_values": x}


        class Model:
            def __init__(self, model_path, loader):
                self.config = types.SimpleNamespace(mm_use_im_start_end=False)
                self.model_path, self.loader, self.calls, self.in_eval = model_path, loader, 0, False
                crash = os.path.join(model_path, "crash_after")
                self.crash_after = int(open(crash).read()) if os.path.exists(crash) else None

            def eval(self):
                self.in_eval = True
                return self

            def generate(self, input_ids, images=None, org_landmark_features=None, max_new_tokens=None,
                         use_cache=None, stopping_criteria=None, **decoding):
                if self.crash_after is not None and self.calls >= self.crash_after:
                    raise RuntimeError("CUDA out of memory.\\nTried to allocate 20.00 MiB (fake)")
                self.calls += 1
                reply = {"prompt": Tokenizer().batch_decode(input_ids)[0],
                         "landmark": org_landmark_features.float().tolist(),
                         "landmark_dtype": str(org_landmark_features.dtype),
                         "image_mean": images.float().mean(dim=(0, 2, 3)).tolist(),
                         "decoding": decoding, "max_new_tokens": max_new_tokens,
                         "stop": stopping_criteria[0].keywords, "eval": self.in_eval, "loader": self.loader}
                with open(os.path.join(self.model_path, "calls.txt"), "a") as f:
                    f.write(str(reply["landmark"][0]) + "\\n")
                out = torch.tensor([[ord(c) for c in " " + json.dumps(reply) + "</s>"]])
                return torch.cat([input_ids, out], dim=1)


        def load_pretrained_model(model_path, model_base, model_name, pretrain_landmark_feature_projector,
                                  load_8bit=False, load_4bit=False, device_map="auto", device="cuda", **kwargs):
            if os.path.exists(os.path.join(model_path, "crash_on_load")):
                raise OSError("Can't load tokenizer for '" + str(model_base) + "' (fake)")
            q = kwargs.pop("quantization_config", None)
            loader = {"model_path": model_path, "model_base": model_base, "model_name": model_name,
                      "projector_dir": pretrain_landmark_feature_projector, "load_4bit": load_4bit,
                      "device": device, "other_kwargs": sorted(kwargs)}
            if q is not None:
                from peft.tuners.lora import LoraModel
                loader["quantization"] = {
                    "load_in_4bit": q.load_in_4bit, "quant_type": q.bnb_4bit_quant_type,
                    "double_quant": q.bnb_4bit_use_double_quant, "compute_dtype": str(q.bnb_4bit_compute_dtype),
                    "skip": q.llm_int8_skip_modules,
                    "lora_left_unmerged": getattr(LoraModel.merge_and_unload, "facr_unmerged", False)}
            return Tokenizer(), Model(model_path, loader), ImageProcessor(), 2048
        """,
}
FIXED_INIT = BLOCKED_INIT.splitlines(keepends=True)
FIXED_INIT = "".join(FIXED_INIT[:2])
FIXED_CLIP = BLOCKED_CLIP.replace(
    "CLIPVisionModel.from_pretrained(\n"
    "            '/home/liyifa11/MyCodes/EmoDQ/EmoDQ/checkpoints/clip-vit-large-patch14-336')",
    "CLIPVisionModel.from_pretrained(self.vision_tower_name)")


def make_checkout(tmp_path: Path, *, blocker1: bool = False, blocker2: bool = False) -> Path:
    repo = tmp_path / "EmoLA"
    for rel, text in FAKE_MODULES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(textwrap.dedent(text))
    (repo / "llava/model/__init__.py").write_text(BLOCKED_INIT if blocker1 else FIXED_INIT)
    clip = repo / "llava/model/multimodal_encoder/clip_encoder.py"
    clip.parent.mkdir(parents=True, exist_ok=True)
    clip.write_text(BLOCKED_CLIP if blocker2 else FIXED_CLIP)
    tiny_landmark_onnx(repo / emola.LANDMARK_ONNX)
    return repo


def make_checkpoint(tmp_path: Path, name: str = "llava-v1.5-7b-lora-emola-au") -> Path:
    ckpt = tmp_path / "saved_checkpoints" / name
    ckpt.mkdir(parents=True)
    for f in ("config.json", "adapter_config.json"):
        (ckpt / f).write_text("{}")
    for f in ("adapter_model.bin", "non_lora_trainables.bin", "landmark_feature_projector.bin"):
        (ckpt / f).write_bytes(b"\0")
    return ckpt


@pytest.fixture
def base(tmp_path) -> Path:
    b = tmp_path / "checkpoints" / "llava-v1.5-7b"
    b.mkdir(parents=True)
    (b / "config.json").write_text("{}")
    return b


# ------------------------------------------------------------------ check_checkout
def test_fixed_checkout_passes_and_resolves(tmp_path):
    repo = make_checkout(tmp_path)
    assert emola.check_checkout(repo) == repo.resolve()


def test_checkout_that_is_not_a_folder_or_not_emola_is_refused(tmp_path):
    with pytest.raises(FacrError, match="not a folder"):
        emola.check_checkout(tmp_path / "nope")
    (tmp_path / "other").mkdir()
    with pytest.raises(FacrError, match=r"not an EmoLA checkout \(no emollava/eval/eval_FABA.py\)") as e:
        emola.check_checkout(tmp_path / "other")
    assert e.value.source == str(tmp_path / "other")


def test_broken_llava_query_llama_import_names_file_and_line_to_delete(tmp_path):
    repo = make_checkout(tmp_path, blocker1=True)
    with pytest.raises(FacrError) as e:
        emola.check_checkout(repo)
    assert e.value.source == str(repo / "llava/model/__init__.py")
    assert "delete line 3" in e.value.message and "llava_query_llama" in e.value.message


def test_llava_query_llama_import_is_fine_when_the_module_exists(tmp_path):
    repo = make_checkout(tmp_path, blocker1=True)
    (repo / "llava/model/language_model/llava_query_llama.py").write_text("")
    emola.check_checkout(repo)


def test_hard_coded_clip_path_names_file_line_and_fix(tmp_path):
    repo = make_checkout(tmp_path, blocker2=True)
    with pytest.raises(FacrError) as e:
        emola.check_checkout(repo)
    assert e.value.source == str(repo / "llava/model/multimodal_encoder/clip_encoder.py")
    assert "line 5" in e.value.message and "/home/liyifa11" in e.value.message
    assert "self.vision_tower_name" in e.value.message


def test_missing_landmark_onnx_is_refused(tmp_path):
    repo = make_checkout(tmp_path)
    (repo / emola.LANDMARK_ONNX).unlink()
    with pytest.raises(FacrError, match="2d106det") as e:
        emola.check_checkout(repo)
    assert e.value.source == str(repo / emola.LANDMARK_ONNX)


# ------------------------------------------------------------------ check_checkpoint
def test_complete_checkpoint_passes(tmp_path, base):
    emola.check_checkpoint(make_checkpoint(tmp_path), base)


def test_checkpoint_errors_name_the_missing_thing(tmp_path, base):
    with pytest.raises(FacrError, match="no such EmoLA checkpoint folder"):
        emola.check_checkpoint(tmp_path / "missing-llava-v1-lora", base)

    ckpt = make_checkpoint(tmp_path)
    (ckpt / "landmark_feature_projector.bin").unlink()
    with pytest.raises(FacrError, match="randomly initialised landmark projector") as e:
        emola.check_checkpoint(ckpt, base)
    assert e.value.source == str(ckpt / "landmark_feature_projector.bin")

    ckpt2 = make_checkpoint(tmp_path, "llava-v1.5-7b-lora-emola-emotion")
    with pytest.raises(FacrError, match="no such base model folder"):
        emola.check_checkpoint(ckpt2, tmp_path / "no-base")
    with pytest.raises(FacrError, match="--model-base"):
        emola.check_checkpoint(ckpt2, None)


@pytest.mark.parametrize("name,lacks", [("emola-au", "'llava', 'lora', 'v1'"), ("llava-v1.5-7b-emola", "'lora'"),
                                        ("lora-emola-v1", "'llava'")])
def test_checkpoint_name_must_select_emolas_lora_loader(tmp_path, base, name, lacks):
    ckpt = make_checkpoint(tmp_path, name)
    with pytest.raises(FacrError, match=f"lacks {lacks}"):
        emola.check_checkpoint(ckpt, base)
    link = tmp_path / "llava-v1.5-7b-lora-emola-au"
    link.symlink_to(ckpt)  # the documented fix: a link with the right name (EmoLA reads the link's name)
    emola.check_checkpoint(link, base)
    assert emola.emola_model_name(link) == "llava-v1.5-7b-lora-emola-au"


def test_model_name_of_a_trainer_checkpoint_folder_is_parent_and_step():
    assert emola.emola_model_name("/x/llava-v1.5-7b-lora-emola-au/checkpoint-50/") == \
        "llava-v1.5-7b-lora-emola-au_checkpoint-50"


# ------------------------------------------------------------------ landmark features
def pattern(h, w):
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 101 + (x * y) % 17 + (x * x * 3 + y) % 29) % 256).astype(np.uint8)


# sha256[:16] of cv2.resize(pattern(h, w), (192, 192)), identical under opencv-python-headless
# 4.8.1.78, 4.10.0.84 and 5.0.0.93.
CV2_RESIZE_SHA = {(50, 37): "821d3ba40460c8d6", (384, 384): "70a647e8a2efdfb2", (500, 333): "a413d32d3cf5786b",
                  (192, 192): "6d0563adff057f86", (1, 1): "9b8625771e1f2b37", (200, 641): "1c77e27104fdf1ea",
                  (97, 96): "9154653a2d20ddc5"}


@pytest.mark.parametrize("size", sorted(CV2_RESIZE_SHA))
def test_resize_linear_is_bit_exact_with_opencv(size):
    out = emola.resize_linear(pattern(*size), 192, 192)
    assert out.shape == (192, 192, 3) and out.dtype == np.uint8
    assert hashlib.sha256(out.tobytes()).hexdigest()[:16] == CV2_RESIZE_SHA[size]


def test_resize_linear_matches_installed_cv2_on_random_sizes():
    rng = np.random.default_rng(0)
    for _ in range(30):
        h, w = rng.integers(1, 700, size=2)
        img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        np.testing.assert_array_equal(emola.resize_linear(img, 192, 192), cv2.resize(img, (192, 192)))


def test_landmark_features_follow_emolas_bgr_recipe(tmp_path):
    path = tiny_landmark_onnx(tmp_path / "tiny.onnx")
    images = [face(0), face(1, 97, 130), face(2, 384, 384)]
    got = emola.landmark_features([Image.fromarray(im) for im in images], path)
    assert got.shape == (3, 212) and got.dtype == np.float32
    for feat, rgb in zip(got, images):
        # float32 sums over 192x192 pixels in onnxruntime: ~1e-5 from the float64 reference
        np.testing.assert_allclose(feat, expected_feature(rgb), rtol=0, atol=1e-4)
    # the test can tell the channel orders apart: an RGB pipeline would be far off
    rgb_order = (images[0].astype(np.float32) / 255.0).mean(axis=(0, 1)) @ W
    assert np.abs(rgb_order - got[0]).max() > 0.05


def test_landmark_features_need_212_outputs_and_an_existing_model(tmp_path):
    with pytest.raises(FacrError, match="no such ONNX model"):
        emola.landmark_features([Image.fromarray(face(0))], tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(FacrError, match="onnxruntime cannot load it"):
        emola.landmark_features([Image.fromarray(face(0))], bad)


# ------------------------------------------------------------------ prepare_inputs
def synth_record(i: int, emotion="happiness", aus=None) -> FaceRecord:
    return FaceRecord(image=face(i), dataset="synth", subject=f"s{i}", split="test", emotion=emotion,
                      au_presence=aus if aus is not None else {"AU6": 1, "AU12": 1, "AU4": 0}, meta={"index": i})


def test_prepare_inputs_writes_emolas_files(tmp_path):
    onnx_path = tiny_landmark_onnx(tmp_path / "tiny.onnx")
    root = tmp_path / "ds"
    (root / "img").mkdir(parents=True)
    Image.fromarray(face(7, 120, 100)).save(root / "img" / "a.jpg", quality=95)
    records = [synth_record(3), synth_record(12),
               FaceRecord(image=str(root / "img" / "a.jpg"), dataset="files", subject="x")]
    data = emola.prepare_inputs(records, root, tmp_path / "work", onnx_path)
    assert data == tmp_path / "work" / "data"

    au = json.loads((data / "eval_au_anno.json").read_text())
    emo = json.loads((data / "eval_emotion_anno.json").read_text())
    sha = [e.pop("sha1") for e in au]
    assert [e.pop("sha1") for e in emo] == sha and len(set(sha)) == 3  # one per face, for the driver's resume
    assert au == [{"image": f"images/{name}.png", "landmark": f"landmarks/{name}.npy", "label": "",
                   "gpt4": emola.DUMMY_GPT4} for name in ("test/00003", "test/00012", "img/a.jpg")]
    assert [e["label"] for e in emo] == [4, 4, 4] and [e["image"] for e in emo] == [e["image"] for e in au]
    # EmoLA's parser: AU labels split on ', ' into numbers, emotion int(label), gpt4 non-empty
    assert all(isinstance(e["label"], str) for e in au) and all(int(e["label"]) == 4 for e in emo)
    assert all(e["gpt4"].strip() for e in au + emo)

    index = json.loads((data / "index.json").read_text())
    assert [(e["index"], e["key"]) for e in index] == [(0, "test/00003.png"), (1, "test/00012.png"), (2, "img/a.jpg")]

    jpeg = np.asarray(Image.open(root / "img" / "a.jpg").convert("RGB"))
    for item, rgb in zip(au, [face(3), face(12), jpeg]):
        png = np.asarray(Image.open(data / item["image"]))
        np.testing.assert_array_equal(png, rgb)  # lossless: EmoLA sees the pixels the landmarks came from
        feat = np.load(data / item["landmark"])
        assert feat.shape == (212,) and feat.dtype == np.float32
        np.testing.assert_allclose(feat, expected_feature(rgb), rtol=0, atol=1e-4)


def test_prepare_inputs_only_writes_the_asked_tasks(tmp_path):
    onnx_path = tiny_landmark_onnx(tmp_path / "tiny.onnx")
    data = emola.prepare_inputs([synth_record(0)], None, tmp_path / "w", onnx_path, tasks=("au",))
    assert (data / "eval_au_anno.json").is_file() and not (data / "eval_emotion_anno.json").exists()
    with pytest.raises(ValueError, match="tasks"):
        emola.prepare_inputs([synth_record(0)], None, tmp_path / "w", onnx_path, tasks=("pain",))


# ------------------------------------------------------------------ the driver, end to end (fake EmoLA)
V1_PROMPT = ("A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
             "detailed, and polite answers to the human's questions. USER: <image>\n{q} ASSISTANT:")


@pytest.fixture
def fake(tmp_path, base):
    """A fake EmoLA checkout, two fake checkpoints, a base folder and four faces."""
    repo = make_checkout(tmp_path)
    au = make_checkpoint(tmp_path, "llava-v1.5-7b-lora-emola-au")
    emo = make_checkpoint(tmp_path, "llava-v1.5-7b-lora-emola-emotion")
    records = [synth_record(5, "anger", {"AU4": 1, "AU7": 1, "AU12": 0}), synth_record(1, "happiness"),
               synth_record(9, None, {"AU1": None}), synth_record(2, "sadness", {"AU1": 0})]
    return SimpleNamespace(repo=repo, au=au, emo=emo, base=base, records=records)


def _run(fake, work, records=None, **kw):
    return emola.generate_emola(fake.repo, fake.au, fake.base, fake.records if records is None else records, None,
                                python=sys.executable, workdir=work, device="cpu", source="emola-test", **kw)


def test_generate_emola_joins_both_answers_back_to_their_records(fake, tmp_path):
    rows = _run(fake, tmp_path / "work", emotion_model_path=fake.emo)
    assert [r["image"] for r in rows] == ["test/00005.png", "test/00001.png", "test/00009.png", "test/00002.png"]
    assert rows[0]["emotion"] == "anger" and rows[0]["aus"] == ["AU4", "AU7"]
    assert "emotion" not in rows[2] and "aus" not in rows[2]  # no labels (AU1 not coded): nothing invented
    assert rows[3]["aus"] == [] and rows[1]["aus"] == ["AU6", "AU12"]
    assert all(r["source"] == "emola-test" for r in rows)

    for row, rec in zip(rows, fake.records):
        expected = expected_feature(rec.image)
        for key, question, ckpt in (("output", PROMPTS["au"], fake.au),
                                    ("emotion_output", PROMPTS["emotion"], fake.emo)):
            echo = json.loads(row[key])  # "</s>" stripped, whitespace trimmed, as EmoLA
            assert echo["prompt"] == V1_PROMPT.format(q=question)
            # the right face reached the model: its own landmark vector (fp16) and its own image
            np.testing.assert_allclose(echo["landmark"], expected, rtol=2e-3, atol=2e-3)
            assert echo["landmark_dtype"] == "torch.float16"
            np.testing.assert_allclose(echo["image_mean"], rec.image.reshape(-1, 3).mean(0) / 255.0, atol=2e-3)
            assert echo["decoding"] == {"do_sample": False} and echo["max_new_tokens"] == 512
            assert echo["stop"] == ["</s>"] and echo["eval"] is True
            assert echo["loader"]["model_name"] == ckpt.name
            assert echo["loader"]["model_path"] == echo["loader"]["projector_dir"] == str(ckpt)
            assert echo["loader"]["model_base"] == str(fake.base) and echo["loader"]["load_4bit"] is False
            assert "quantization" not in echo["loader"]


def test_crash_is_one_line_naming_the_log_and_the_rerun_resumes(fake, tmp_path):
    (fake.au / "crash_after").write_text("2")
    with pytest.raises(FacrError) as e:
        _run(fake, tmp_path / "work")
    log = Path(e.value.source)
    assert log.is_file() and log.parent == tmp_path / "work" / "logs"
    assert "\n" not in str(e.value)
    assert "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (fake)" in e.value.message
    assert len((fake.au / "calls.txt").read_text().splitlines()) == 2

    (fake.au / "crash_after").unlink()
    rows = _run(fake, tmp_path / "work")
    # only the two unanswered faces were generated again
    assert len((fake.au / "calls.txt").read_text().splitlines()) == 4
    for row, rec in zip(rows, fake.records):
        np.testing.assert_allclose(json.loads(row["output"])["landmark"], expected_feature(rec.image),
                                   rtol=2e-3, atol=2e-3)
    # a third run has nothing to do: the model is not even loaded
    (fake.au / "crash_on_load").write_text("")
    assert _run(fake, tmp_path / "work") == rows
    assert len((fake.au / "calls.txt").read_text().splitlines()) == 4


def test_resume_drops_a_cut_short_line_and_redoes_a_face_that_changed(fake, tmp_path):
    _run(fake, tmp_path / "work")
    out = next((tmp_path / "work" / "out").glob("au-*.jsonl"))
    with open(out, "a") as f:
        f.write('{"index": 3, "ima')  # what a crash mid-write leaves
    (fake.au / "calls.txt").unlink()
    changed = list(fake.records)
    changed[1] = synth_record(1, "happiness")
    changed[1].image = face(40)  # same key (test/00001.png), another face
    rows = _run(fake, tmp_path / "work", records=changed)
    assert len((fake.au / "calls.txt").read_text().splitlines()) == 1  # only the changed face again
    for row, rec in zip(rows, changed):
        np.testing.assert_allclose(json.loads(row["output"])["landmark"], expected_feature(rec.image),
                                   rtol=2e-3, atol=2e-3)
    assert out.read_text().endswith("}\n")


def test_a_failed_load_names_the_log(fake, tmp_path):
    (fake.au / "crash_on_load").write_text("")
    with pytest.raises(FacrError, match=r"OSError: Can't load tokenizer for .* \(fake\)$") as e:
        _run(fake, tmp_path / "work")
    assert e.value.source.endswith(".log")


def test_a_workdir_of_yours_or_an_input_is_refused_and_facrs_own_is_resumed(fake, tmp_path):
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "eval_au_anno.json").write_text("[my annotations]")
    with pytest.raises(FacrError, match="facr did not write it"):
        _run(fake, mine)
    assert (mine / "data" / "eval_au_anno.json").read_text() == "[my annotations]"
    with pytest.raises(FacrError, match="facr never writes over what it reads"):
        _run(fake, fake.au / "work")  # inside the checkpoint
    assert not (fake.au / "work").exists()
    work = tmp_path / "work"
    rows = _run(fake, work)
    assert json.loads((work / ".facr-output.json").read_text())["kind"] == "emola-work"
    assert _run(fake, work) == rows  # its own folder: continued


def test_temporary_workdir_is_removed_on_success(fake, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    rows = emola.generate_emola(fake.repo, fake.au, fake.base, fake.records[:1], None, python=sys.executable,
                                device="cpu")
    assert len(rows) == 1 and rows[0]["source"] == "" and list((tmp_path / "tmp").iterdir()) == []


def test_preflight_runs_before_anything_is_written(fake, tmp_path):
    (fake.emo / "landmark_feature_projector.bin").unlink()
    with pytest.raises(FacrError, match="landmark projector"):
        _run(fake, tmp_path / "work", emotion_model_path=fake.emo)
    assert not (tmp_path / "work").exists()
    with pytest.raises(FacrError, match="no such python"):
        emola.generate_emola(fake.repo, fake.au, fake.base, fake.records, None, python=str(tmp_path / "nopython"),
                             workdir=tmp_path / "work")


@pytest.mark.slow
def test_four_bit_passes_a_config_that_keeps_the_projector_and_leaves_lora_unmerged(fake, tmp_path):
    rows = _run(fake, tmp_path / "work", load_in_4bit=True, sample=True)
    echo = json.loads(rows[0]["output"])
    assert echo["loader"]["load_4bit"] is False  # the builder's own 4-bit config would quantise mm_projector
    assert echo["loader"]["quantization"] == {
        "load_in_4bit": True, "quant_type": "nf4", "double_quant": True, "compute_dtype": "torch.float16",
        "skip": ["mm_projector", "lm_head"], "lora_left_unmerged": True}
    assert echo["decoding"] == {"do_sample": True, "top_p": 0.5, "temperature": 0.01}
    # different settings answer into a different file: nothing is resumed from the greedy fp16 run
    assert len(list((tmp_path / "work" / "out").glob("au-*.jsonl"))) == 1
    _run(fake, tmp_path / "work")
    assert len(list((tmp_path / "work" / "out").glob("au-*.jsonl"))) == 2


def test_cli_generate_with_a_fake_checkout_feeds_the_emola_audit(fake, tmp_path, run_cli):
    """`facr emola generate --model emola` end to end through the CLI (the fake checkout stands in for
    EmoLA's code, as above), then `facr audit --model emola` on what it wrote."""
    from facr.data.synth import SynthConfig, write_synth

    data = tmp_path / "synth"
    write_synth(data, SynthConfig(n=24, seed=1, subjects=4, size=32), workers=1)
    out = tmp_path / "emola.jsonl"
    argv = ["emola", "generate", "--model", "emola", "--emola-repo", fake.repo, "--model-path", fake.au,
            "--emotion-model-path", fake.emo, "--model-base", fake.base, "--emola-python", sys.executable,
            "--device", "cpu", "--data", data, "--limit", "2", "--out", out, "--json"]
    code, stdout, err = run_cli(*argv)
    assert code == 0, err
    assert json.loads(stdout)["n_lines"] == 2
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(x["source"] == f"EmoLA {fake.au.name}" and x["image"].startswith("test/") for x in lines)
    assert json.loads(lines[0]["output"])["prompt"].endswith(f"{PROMPTS['au']} ASSISTANT:")
    assert (tmp_path / "emola.jsonl.emola").is_dir()  # inputs, answers and logs kept for a resume
    code, stdout, err = run_cli("audit", "--model", "emola", "--generations", out, "--data", data, "--json")
    assert code == 0, err
    assert json.loads(stdout)["n_samples"] == 2
    code, _, err = run_cli("emola", "generate", "--model", "emola", "--data", data, "--out", tmp_path / "e2.jsonl")
    assert code == 2 and "--emola-repo, --model-path, --model-base" in err
    code, _, err = run_cli(*argv)  # the finished file is not generated over without --overwrite
    assert code == 2 and err == f"facr: {out}: already exists; pass --overwrite to replace it\n"
