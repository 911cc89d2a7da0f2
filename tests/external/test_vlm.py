"""facr.external.vlm on a tiny LLaVA saved to disk like a real llava-hf folder."""

import numpy as np
import pytest
import torch

from facr.data.records import FaceRecord
from facr.errors import FacrError
from facr.external.generations import PROMPTS, image_of
from facr.external.vlm import _prompt_text, ask_vlm, generate_vlm, load_vlm
from facr.testing import tiny_backbone, tiny_llava
from facr.verbalizer.backbones import quiet_loading

MAX_NEW = 12


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return tiny_llava(tmp_path_factory.mktemp("vlm") / "tiny-llava", seed=0)


@pytest.fixture(scope="module")
def vlm(llava_dir):
    return load_vlm(str(llava_dir), device="cpu")


def faces(n=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        au = {} if i == 1 else {"AU6": i % 2, "AU12": 1, "AU4": None}  # face 1 codes no AU
        out.append(FaceRecord(image=rng.integers(0, 256, (24 + 4 * i, 28, 3), dtype=np.uint8), dataset="synth",
                              subject=f"s{i}", split="test", emotion=None if i == 2 else "happiness",
                              au_presence=au, meta={"index": i}))
    return out


def test_tiny_llava_processor_expands_image_to_the_vision_towers_patch_count(llava_dir, vlm):
    model, processor = vlm
    image = image_of(faces(1)[0])
    inputs = processor(text=[_prompt_text(processor, PROMPTS["au"])], images=[[image]], return_tensors="pt")
    n_tokens = int((inputs["input_ids"] == model.config.image_token_index).sum())
    with torch.no_grad():
        features = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output  # one per image
    n_features = sum(f.shape[0] for f in features)
    assert n_tokens == n_features == (32 // 8) ** 2
    assert int((inputs["input_ids"] == processor.tokenizer.unk_token_id).sum()) == 0


def test_tiny_llava_is_deterministic_under_its_seed(llava_dir, tmp_path):
    again = tiny_llava(tmp_path / "again", seed=0)
    assert (again / "model.safetensors").read_bytes() == (llava_dir / "model.safetensors").read_bytes()


def test_generate_vlm_gives_one_row_per_face_with_keys_and_labels(vlm):
    records = faces(3)
    rows = generate_vlm(*vlm, records, None, batch_size=2, max_new_tokens=MAX_NEW, source="tiny-llava")
    assert [r["image"] for r in rows] == ["test/00000.png", "test/00001.png", "test/00002.png"]
    assert set(rows[0]) == {"image", "output", "emotion_output", "emotion", "aus", "source"}
    assert rows[0]["aus"] == ["AU12"] and rows[0]["emotion"] == "happiness"
    assert "aus" not in rows[1]  # codes no AU: no label, rather than "none active"
    assert "emotion" not in rows[2] and rows[2]["aus"] == ["AU12"]
    assert all(r["source"] == "tiny-llava" for r in rows)
    texts = [r[k] for r in rows for k in ("output", "emotion_output")]
    assert all(isinstance(t, str) for t in texts) and any(texts)


def test_batched_generation_equals_one_face_at_a_time(vlm):
    records = faces(5)
    batched = generate_vlm(*vlm, records, None, batch_size=4, max_new_tokens=MAX_NEW)
    single = generate_vlm(*vlm, records, None, batch_size=1, max_new_tokens=MAX_NEW)
    assert batched == single
    assert len({r["output"] for r in batched}) > 1  # the answers depend on the face


def test_left_padding_keeps_answers_when_prompt_lengths_differ(vlm):
    model, processor = vlm
    images = [image_of(r) for r in faces(3)]
    prompts = [PROMPTS["au"], "the face shows a brow lowerer and a cheek raiser , which suggest pain", "What ?"]
    lengths = {len(processor.tokenizer(_prompt_text(processor, p))["input_ids"]) for p in prompts}
    assert len(lengths) == 3  # the batch really is padded
    together = ask_vlm(model, processor, images, prompts, max_new_tokens=MAX_NEW)
    apart = [ask_vlm(model, processor, [im], [p], max_new_tokens=MAX_NEW)[0] for im, p in zip(images, prompts)]
    assert together == apart


def test_output_holds_only_the_new_tokens(vlm):
    rows = generate_vlm(*vlm, faces(3), None, max_new_tokens=MAX_NEW)
    for row in rows:
        for text in (row["output"], row["emotion_output"]):
            # The word-level tokenizer decodes one word per token: the prompt alone is longer than this.
            assert len(text.split()) <= MAX_NEW
            assert PROMPTS["au"] not in text and not text.startswith("USER")


def test_au_task_alone_gives_no_emotion_output(vlm):
    rows = generate_vlm(*vlm, faces(2), None, tasks=("au",), max_new_tokens=4)
    assert all("output" in r and "emotion_output" not in r for r in rows)
    with pytest.raises(ValueError, match="tasks"):
        generate_vlm(*vlm, faces(1), None, tasks=("valence",))


def test_load_vlm_on_a_folder_without_a_model_names_the_folder(tmp_path):
    with pytest.raises(FacrError, match="no config.json") as info:
        load_vlm(str(tmp_path))
    assert info.value.source == str(tmp_path)
    with pytest.raises(FacrError, match="no such model folder"):
        load_vlm(str(tmp_path / "missing"))


def test_load_vlm_on_a_text_only_model_says_it_is_not_an_image_model(tmp_path):
    model, tokenizer = tiny_backbone("qwen3")
    with quiet_loading():
        model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(FacrError, match="not an image-text model") as info:
        load_vlm(str(tmp_path), device="cpu")
    assert info.value.source == str(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_load_vlm_in_4bit_without_cuda_fails_before_loading(tmp_path):
    missing = tmp_path / "never-read"
    with pytest.raises(FacrError, match="4-bit loading needs a CUDA GPU") as info:
        load_vlm(str(missing), load_in_4bit=True)
    assert info.value.source == str(missing)
