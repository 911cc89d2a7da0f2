"""Memory of the running chat app with the SmolLM2 verbalizer, and how long its answers take.

Starts ``facr chat`` as its own process (the demo's checkpoints by default), drives it as a person
would through gradio_client — a gallery-size benchmark face and a real photo uploaded, "why?", three
what-ifs, "which AUs matter" — and reads the process's peak resident memory (VmHWM, from /proc) at the
end, with the resident memory after start-up. Floor: peak < 4 GB; the script exits 1 above it.

    python benchmarks/bench_chat_memory.py [--verbalizer demo-out/verbalizer] [--data demo-out/synth] [--json]
                                           [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run  # noqa: E402

FLOOR_GB = 4.0


def _kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def main(argv=None) -> int:
    from gradio_client import Client, handle_file
    from PIL import Image
    from skimage import data as skdata

    from facr.utils import free_port

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verbalizer", default="demo-out/verbalizer")
    p.add_argument("--data", default="demo-out/synth")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append to BENCHMARKS.md")
    args = p.parse_args(argv)

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "facr.cli", "chat", "--verbalizer", args.verbalizer, "--data",
                             args.data, "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        t0 = time.perf_counter()
        for line in proc.stdout:
            if "open http://" in line:
                break
        else:
            raise SystemExit("facr chat exited before serving")
        client = None
        while client is None:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # noqa: BLE001 - the server is still coming up
                time.sleep(0.5)
        startup = time.perf_counter() - t0
        rss_idle = _kib(proc.pid, "VmRSS")
        with tempfile.TemporaryDirectory() as tmp:
            photo = Path(tmp) / "astronaut.png"
            Image.fromarray(skdata.astronaut()).save(photo)
            steps = [("upload a photo (detect, crop, read, rationale)", lambda: client.predict(
                         handle_file(str(photo)), False, api_name="/see")),
                     ("why?", lambda: client.predict("why?", [], api_name="/ask")),
                     ("what if AU12 were absent?", lambda: client.predict("what if AU12 were absent?", [],
                                                                          api_name="/ask")),
                     ("what if AU4 were at 0.9?", lambda: client.predict("what if AU4 were at 0.9?", [],
                                                                         api_name="/ask")),
                     ("what if AU6 and AU12 were absent?", lambda: client.predict(
                         "what if AU6 and AU12 were absent?", [], api_name="/ask")),
                     ("which AUs matter for sadness?", lambda: client.predict("which AUs matter for sadness?", [],
                                                                              api_name="/ask")),
                     ("EMFACS graph (one click)", lambda: client.predict(api_name="/emfacs"))]
            seconds = {}
            for name, fn in steps:
                t = time.perf_counter()
                fn()
                seconds[name] = time.perf_counter() - t
        peak = _kib(proc.pid, "VmHWM") / 2**20
        rss = _kib(proc.pid, "VmRSS") / 2**20
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {"startup_s": startup, "rss_after_start_gb": rss_idle / 2**20, "rss_end_gb": rss, "peak_rss_gb": peak,
              "seconds": seconds, "floor_gb": FLOOR_GB, "verbalizer": args.verbalizer}
    table = ("| step | seconds |\n| --- | --- |\n"
             + f"| start-up (load reasoner + SmolLM2, gallery) | {startup:.1f} |\n"
             + "\n".join(f"| {k} | {v:.2f} |" for k, v in seconds.items())
             + f"\n\nResident memory: {rss_idle / 2**20:.2f} GB after start-up, {rss:.2f} GB at the end, "
               f"**peak {peak:.2f} GB** (floor: < {FLOOR_GB:g} GB).")
    if not args.no_append:
        append_section(f"Chat app memory and answer times (verbalizer {args.verbalizer})", table,
                       "One `facr chat` process driven through gradio_client; peak = VmHWM of that process.")
    print(json.dumps(result, indent=2) if args.json else table)
    return check_floor("peak resident memory, GB", peak, FLOOR_GB, at_most=True)


if __name__ == "__main__":
    sys.exit(run(main))
