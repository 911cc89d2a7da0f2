"""Reading questions: intents, AUs through the one parser, values of what-ifs, classes by adjective."""

import pytest

from facr.chat.questions import parse_question

AUS = ["AU1", "AU4", "AU6", "AU12", "AU15", "AU25"]
CLASSES = ["neutral", "happiness", "sadness", "anger", "pain"]


def ask(text):
    return parse_question(text, AUS, CLASSES)


@pytest.mark.parametrize("text, settings", [
    ("what if AU12 were absent?", {"AU12": 0.0}),
    ("What if AU4 were at 0.9?", {"AU4": 0.9}),
    ("what if au 4 was at .25", {"AU4": 0.25}),
    ("suppose AU6 at 90%", {"AU6": 0.9}),
    ("what if AU6 and AU12 were absent?", {"AU6": 0.0, "AU12": 0.0}),
    ("what if AU4 at 0.9 and AU12 were absent", {"AU4": 0.9, "AU12": 0.0}),
    ("what if the lip corner puller were removed?", {"AU12": 0.0}),
    ("what if AU15 were fully present?", {"AU15": 1.0}),
    ("set AU1 to 1", {"AU1": 1.0}),
    ("what if AU12 were not there", {"AU12": 0.0}),
    ("without AU12?", {"AU12": 0.0}),
])
def test_what_if_reads_each_au_and_its_value(text, settings):
    q = ask(text)
    assert q.kind == "what_if", q
    assert q.settings == settings


def test_a_value_outside_zero_one_is_a_problem_not_a_what_if():
    q = ask("what if AU4 were at 3?")
    assert q.kind == "help" and "outside [0, 1]" in q.problem


def test_an_au_the_latent_lacks_is_reported():
    q = ask("what if AU27 were absent?")
    assert q.kind == "help" and q.unknown == ["AU27"] and q.settings == {}


@pytest.mark.parametrize("text, cls", [
    ("which AUs matter for sadness?", "sadness"),
    ("what causes a sad face here", "sadness"),
    ("Which action units matter for the happy prediction?", "happiness"),
    ("which AUs are important?", None),
    ("what are the parents of pain", "pain"),
])
def test_matters_names_the_class_asked_about(text, cls):
    q = ask(text)
    assert q.kind == "matters" and q.cls == cls


@pytest.mark.parametrize("text, kind", [
    ("why?", "why"), ("Explain", "why"), ("why does it say anger?", "why"), ("AU12?", "au"),
    ("tell me about the cheek raiser", "au"), ("reset", "reset"), ("undo that", "reset"),
    ("hello there", "help"), ("", "help"), ("where is AU12?", "where"), ("where does it look?", "where"),
    ("show me the lip corner puller", "where"),
])
def test_other_intents(text, kind):
    assert ask(text).kind == kind
