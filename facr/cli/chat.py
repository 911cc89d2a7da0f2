"""``facr chat``: the chat explainer (Gradio). Its flags and text live in :mod:`facr.chat.ui`, which
``python app/app.py`` shares."""

from __future__ import annotations

from facr.cli.base import Command, Group

HELP = "the chat explainer (Gradio, on 127.0.0.1): ask why and what if about a face"


def cmd_chat(args) -> int:
    from facr.chat.ui import run

    return run(args)


def _arguments(p) -> None:
    from facr.chat import ui

    p.description, p.epilog = ui.DESCRIPTION, ui.EPILOG
    ui.add_arguments(p)


GROUP = Group("chat", HELP, command=Command("chat", HELP, _arguments, cmd_chat))
