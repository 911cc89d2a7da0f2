"""The explainer: its readings are the reasoner's, its what-ifs the one do(), its checks the audit's pairs."""

import numpy as np
import pytest
import torch

from facr.au import ACTIVE
from facr.causal import do, graph_signs
from facr.chat import ChatSession, Explainer
from facr.errors import FacrError
from facr.graph import resolve_graph
from facr.verbalizer.wellformed import check_rationale


def test_a_reading_is_the_reasoners_forward_pass(explainer, faces):
    x = torch.from_numpy(np.stack(faces[:3]))
    with torch.no_grad():
        out = explainer.model(x)
    for i in range(3):
        r = explainer.read(faces[i])
        assert torch.allclose(r.z, out.z[i], atol=1e-6)
        assert torch.allclose(r.logits, out.logits[i], atol=1e-5)
        assert r.predicted == explainer.classes[int(out.logits[i].argmax())]


def test_a_what_if_is_the_one_do_through_the_head(explainer, faces):
    r = explainer.read(faces[0])
    after = explainer.what_if(r, {"AU4": 0.9, "AU12": 0.0})
    z = do(do(r.z[None], explainer.aus.index("AU4"), 0.9), explainer.aus.index("AU12"), 0.0)
    with torch.no_grad():
        assert torch.allclose(after.logits, explainer.model.head(z)[0], atol=1e-6)
    assert after.settings == {"AU4": 0.9, "AU12": 0.0}
    stacked = explainer.what_if(after, {"AU1": 1.0})  # what-ifs accumulate until reset
    assert stacked.settings == {"AU4": 0.9, "AU12": 0.0, "AU1": 1.0}
    with pytest.raises(FacrError, match="outside|must be in"):
        explainer.what_if(r, {"AU4": 1.5})
    with pytest.raises(FacrError, match="AU27 is not in this model's latent"):
        explainer.what_if(r, {"AU27": 0.0})


def test_the_per_face_check_counts_the_audits_pairs(explainer, faces):
    g = resolve_graph("emfacs")
    s = graph_signs(g, explainer.aus, explainer.classes).numpy()
    for pixels in faces[:6]:
        r = explainer.read(pixels)
        chk = explainer.check(r, graph=g)
        c = explainer.classes.index(r.predicted)
        d, sign, eps = r.delta[:, c].numpy(), s[:, c], explainer.epsilon
        assert chk.sens_pairs == int((sign != 0).sum())
        assert chk.sens_hits == int(((sign * d > eps) & (sign != 0)).sum())  # recomputed by hand
        assert chk.inv_pairs == int((sign == 0).sum())
        assert chk.inv_hits == int(((np.abs(d) <= eps) & (sign == 0)).sum())
        by_effect = [explainer.aus[k] for k in np.argsort(-np.abs(d), kind="stable")[: int((sign != 0).sum())]]
        assert set(chk.invoked) == set(by_effect)


def test_the_streamed_rationale_grows_to_the_verbalizers_text(explainer, faces):
    r = explainer.read(faces[1])
    parts = list(explainer.rationale_stream(r))
    plan = explainer.plan(r)
    expected = explainer.verbalizer.generate(r.z[None], [r.predicted], plans=[plan])[0]
    assert parts[-1] == expected
    assert len(parts) >= 3  # token by token, not one piece
    assert all(b.startswith(a[: max(0, len(a) - 8)]) for a, b in zip(parts[:-1], parts[1:-1]))
    # the plan: the invoked AUs the face shows, named each once in FACS form, then the emotion and p
    assert plan.aus == [a for a in explainer.check(r).invoked if r.z[explainer.aus.index(a)] >= ACTIVE]
    assert Explainer.named(expected) == plan.aus or set(Explainer.named(expected)) == set(plan.aus)
    assert check_rationale(expected, plan.aus, r.predicted) == [], expected


def test_without_a_verbalizer_the_rationale_names_the_strongest_active_effects(explainer, faces):
    bare = Explainer(explainer.model, explainer.graph, None, epsilon=explainer.epsilon)
    r = bare.read(faces[2])
    text = bare.rationale(r)
    named = Explainer.named(text)
    assert all(a in r.active and abs(r.effect(a)) > bare.epsilon for a in named)
    assert text.startswith(f"The face shows {r.predicted}")


def test_loading_with_nothing_says_how_to_make_the_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FacrError, match=r"demo-out/verbalizer: no facr verbalizer checkpoint here \(run `make demo`"):
        Explainer.load()
    missing = r"demo-out/experiment/cells/facr/seed0/fixed: no facr reasoner checkpoint here"
    with pytest.raises(FacrError, match=missing):
        Explainer.load(use_verbalizer=False)


def test_a_verbalizer_alone_brings_its_reasoner(chat_models):
    run, verbalizer = chat_models
    e = Explainer.load(verbalizer=str(verbalizer))
    assert e.model_path == str(run / "model")
    assert e.verbalizer_path == str(verbalizer / "verbalizer")
    # the verbalizer in use is the one trained: what training changed, read straight from its file
    from safetensors.torch import load_file

    saved = load_file(str(verbalizer / "verbalizer" / "verbalizer.safetensors"))
    prompt = {f"prompt.{k}": t for k, t in e.verbalizer.prompt.state_dict().items()}
    assert prompt and all(torch.equal(t.cpu(), saved[k]) for k, t in prompt.items())
    assert torch.equal(e.verbalizer.au_embedding_rows().cpu(), saved["au_input_rows"])
    assert e.verbalizer.config.aus == e.aus


# ------------------------------------------------------------------ the conversation
def test_asking_before_a_face_asks_for_one(explainer):
    *_, answer = ChatSession(explainer).ask("why?")
    assert answer.startswith("Give me a face first")


def test_why_gives_the_rationale_and_the_effects_behind_it(explainer, faces):
    s = ChatSession(explainer)
    r = s.see(faces[0])
    answers = list(s.ask("why?"))
    assert len(answers) >= 3 and "▌" in answers[1]  # streamed
    final = answers[-1]
    assert f"The reasoner says **{r.predicted}**" in final
    assert s.rationale in final and s.rationale == explainer.rationale(r)
    top = max(explainer.aus, key=lambda a: abs(r.effect(a)))
    assert f"| {top} " in final and f"{r.effect(top):+.2f}" in final
    chk = explainer.check(r)
    assert f"Against G: {chk.sens_hits}/{chk.sens_pairs} parents" in final


def test_a_what_if_that_flips_the_prediction_says_so_and_reset_undoes_it(explainer, flip):
    pixels, au, value = flip
    s = ChatSession(explainer)
    before = s.see(pixels)
    *_, answer = s.ask(f"what if {au} were at {value}?")
    expected = explainer.what_if(before, {au: value})
    assert s.current.predicted == expected.predicted != before.predicted
    assert f"do({au} = {value:g})" in answer
    assert f"The prediction **changes**: {before.predicted} → **{expected.predicted}**" in answer
    assert s.current_rationale == explainer.rationale(expected) and s.current_rationale in answer
    *_, answer = s.ask("reset")
    assert s.current is s.face and f"**{before.predicted}**" in answer


def test_which_aus_matter_lists_the_parents_in_the_chosen_graph(explainer, faces):
    s = ChatSession(explainer)
    s.see(faces[0])
    *_, own = s.ask("which AUs matter for sadness?")
    parents = [a for a, *_ in explainer.parents("sadness")]
    assert parents and all(f"**{a}**" in own for a in parents)
    s.set_graph(resolve_graph("emfacs"))
    *_, emfacs = s.ask("which AUs matter for sadness?")
    emfacs_parents = [a for a, *_ in explainer.parents("sadness", resolve_graph("emfacs"))]
    assert "`emfacs" in emfacs and all(f"**{a}**" in emfacs for a in emfacs_parents)


def test_what_it_cannot_map_gets_the_list_of_what_it_can_do(explainer, faces):
    s = ChatSession(explainer)
    s.see(faces[0])
    *_, answer = s.ask("tell me a joke")
    assert answer.startswith("I did not understand that") and "what if AU12 were absent?" in answer
    *_, answer = s.ask("what if AU27 were absent?")
    assert answer.startswith("AU27 is not in this model's AU latent")


def test_where_answers_with_the_maps_of_the_named_au_or_the_invoked_ones(explainer, faces):
    import numpy as np

    from facr.chat.session import ChatSession
    from facr.explain import maps as M

    session = ChatSession(explainer)
    session.see(faces[0])
    answer = list(session.ask("where is AU12?"))[-1]
    assert "Where each AU is seen" in answer and "| AU12 lip corner puller |" in answer and "Grad-CAM" in answer
    assert session.overlay.ndim == 3 and session.overlay.shape[2] == 3
    fm = explainer.where(faces[0], ["AU12"])
    k = explainer.aus.index("AU12")
    heat = M.to_image(M.au_maps(explainer.model, torch.from_numpy(np.array(faces[0]))[None], "gradcam").maps,
                      faces[0].shape[0])[0, k]
    np.testing.assert_allclose(fm.heat["AU12"], heat, atol=1e-6)
    answer = list(session.ask("where does the model look?"))[-1]
    invoked = explainer.where(faces[0]).aus
    assert all(f"| {a} " in answer for a in invoked) and f"invoked for {session.face.predicted}" in answer
