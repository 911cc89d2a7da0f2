"""The chat explainer: ask *why* and *what if* about a face (``facr chat``, ``app/app.py``).

:class:`Explainer` (reasoner + G + verbalizer), :class:`ChatSession` (one conversation, no UI),
:func:`prepare_face` (read, detect, crop) and :func:`parse_question`; the Gradio app is
:func:`facr.chat.ui.build_app`.
"""

from facr.chat.explainer import Explainer, FaceCheck, Reading
from facr.chat.face import Face, FaceError, prepare_face
from facr.chat.questions import Question, parse_question
from facr.chat.session import ChatSession

__all__ = ["ChatSession", "Explainer", "Face", "FaceCheck", "FaceError", "Question", "Reading", "parse_question",
           "prepare_face"]
