"""`facr chat` and `python app/app.py`: one app, run as a person runs it."""

import os
import subprocess
import sys
import time
import urllib.request

from facr.utils import free_port


def test_facr_chat_check_answers_why_on_a_gallery_face(run_cli, chat_models, reasoner, explainer):
    run, verbalizer = chat_models
    data, _ = reasoner
    code, out, err = run_cli("chat", "--model", run, "--verbalizer", verbalizer, "--data", data, "--check")
    assert code == 0, err
    assert out.startswith("gallery face 0 (") and "The reasoner says **" in out and "Against G:" in out


def test_facr_chat_errors_are_one_line(run_cli, tmp_path, chat_models):
    code, _, err = run_cli("chat", "--model", tmp_path / "nothing")
    assert code == 2 and err.strip() == f"facr: {tmp_path / 'nothing'}: no facr reasoner checkpoint here"
    run, _ = chat_models
    code, _, err = run_cli("chat", "--model", run, "--no-verbalizer", "--graph", tmp_path / "g.json")
    assert code == 2 and err.count("\n") == 1 and "g.json: no such file" in err
    code, _, err = run_cli("chat", "--model", run, "--no-verbalizer", "--port", "70000")
    assert code == 2 and "--port must be in 0..65535" in err


def _serve(argv, cwd):
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_url(proc, timeout=120.0) -> tuple[str, list[str]]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "open http://" in line:
            return line.split("open ")[1].split()[0], lines
    raise AssertionError("no URL printed:\n" + "".join(lines))


def test_facr_chat_serves_on_loopback_and_app_py_is_the_same_app(chat_models, reasoner, repo, tmp_path):
    run, verbalizer = chat_models
    data, _ = reasoner
    for argv in ([sys.executable, "-m", "facr.cli", "chat"], [sys.executable, str(repo / "app" / "app.py")]):
        port = free_port()
        proc = _serve([*argv, "--model", str(run), "--verbalizer", str(verbalizer), "--data", str(data),
                       "--port", str(port)], tmp_path)
        try:
            url, lines = _wait_for_url(proc)
            assert url == f"http://127.0.0.1:{port}"
            assert any("graph synth-truth-a" in x and "gallery faces" in x for x in lines)
            for _ in range(60):
                try:
                    page = urllib.request.urlopen(url + "/config", timeout=5).read().decode()
                    break
                except OSError:
                    time.sleep(0.5)
            assert "Ask why and what if" in page and "Benchmark faces" in page
        finally:
            proc.terminate()
            proc.wait(timeout=30)
