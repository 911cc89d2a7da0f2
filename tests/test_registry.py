"""The one registry helper, and the registries built on it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from facr.registry import Registry


def test_a_registry_registers_once_lists_in_order_and_names_what_it_knows_on_a_miss():
    r: Registry[int] = Registry("colour")
    r.register("red", 1)
    assert r.register("green")(2) == 2
    r.register("red", 1)  # the same entry again: a module imported twice
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        r.register("red", 3)
    assert r.names() == ["red", "green"] and r.values() == [1, 2] and "green" in r and "blue" not in r
    with pytest.raises(KeyError, match=r"unknown colour 'blue' \(choose from red, green\)"):
        r["blue"]


def test_providers_are_imported_on_first_lookup_only():
    code = """
import sys
from facr.data import formats
assert formats.FORMATS[0] == "synth" and "facr.data.formats.unbc" not in sys.modules
assert formats.get_loader("unbc").__module__ == "facr.data.formats.unbc"
assert "facr.data.formats.disfa" not in sys.modules  # only the one asked for
assert formats.get_loader("affectnet+faba").__name__ == "load_with_faba"
from facr.verbalizer.backbones import BACKBONES
assert "facr.testing" not in sys.modules and BACKBONES["smollm2-135m"].kind == "gguf-package"
assert BACKBONES["tiny-qwen3"].kind == "tiny" and "facr.testing" in sys.modules  # registered by facr.testing
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_the_auditors_and_map_methods_are_registered_where_they_are_defined():
    from facr.audit.auditors import AUDITORS
    from facr.explain.maps import MAP_METHODS, METHODS

    assert AUDITORS.names()[:1] == ["reasoner"] and {"emola", "frozen-llm", "verbalizer"} <= set(AUDITORS.names())
    assert AUDITORS["emola"].run.__module__ == "facr.audit.external"
    assert METHODS == ("gradcam", "cefam", "rollout", "agcm", "attention", "random") == tuple(MAP_METHODS.names())


def test_the_emotion_heads_are_registered_where_they_are_defined_and_build_the_checkpoint_modules():
    import doctest

    import torch

    import facr.models.heads
    import facr.registry
    from facr.models.heads import HEADS, build_head
    from facr.models.reasoner import Reasoner, ReasonerConfig

    assert HEADS.names() == ["mlp", "linear", "graph", "agcm"]  # all known before any is imported
    assert HEADS["agcm"].modules.__module__ == "facr.models.agcm" and not HEADS["agcm"].z_only
    keys = {}
    edges = {"happiness": {"AU12": 1}, "anger": {"AU4": 1}}
    for name in HEADS.names():
        model = Reasoner(ReasonerConfig(aus=["AU1", "AU4", "AU12"], classes=["happiness", "anger"], head=name,
                                        edges=edges if name == "graph" else None))
        keys[name] = sorted({k.split(".")[0] for k in model.state_dict()})
        assert model.z_only == HEADS[name].z_only
    assert keys == {"mlp": ["encoder", "head", "to_au"], "linear": ["encoder", "head", "to_au"],
                    "graph": ["encoder", "head", "to_au"],
                    "agcm": ["concepts", "encoder", "head"]}  # the names every checkpoint so far was saved with
    assert build_head("linear", 3, 2)(torch.ones(1, 3)).shape == (1, 2)
    assert build_head("graph", 3, 2, signs=[[0, 0], [0, 1], [1, 0]])(torch.ones(1, 3)).shape == (1, 2)
    with pytest.raises(ValueError, match="a z-only head is mlp, linear or graph, got 'agcm'"):
        build_head("agcm", 3, 2)
    with pytest.raises(ValueError, match="head must be one of mlp, linear, graph, agcm, got 'gru'"):
        ReasonerConfig(aus=["AU1"], classes=["a", "b"], head="gru")
    for module in (facr.registry, facr.models.heads):  # the examples in their docstrings hold
        assert doctest.testmod(module).failed == 0
