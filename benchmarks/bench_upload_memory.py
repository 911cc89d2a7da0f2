"""Memory the chat spends refusing a decompression bomb: a ~140 KB PNG of 12000×12000 pixels.

Each way of reading the upload runs in its own fresh process; the number is that process's peak resident
memory (VmHWM) minus its resident memory just before the upload is read (libraries already imported):

- *before*: what the app did until the upload fix: ``gr.Image(type="numpy")`` decodes the whole picture
  (Gradio's ``preprocess_image``), then facr refuses it by size;
- *after*: what it does now: the event skips Gradio's preprocessing and ``facr.chat.face.read_image`` reads the
  size from the header (PIL's bomb limit set from facr's) and refuses it before decoding.

    python benchmarks/bench_upload_memory.py [--side 12000] [--json] [--no-append]

Floor: refusing the bomb the way the app does now costs at most 64 MB over the baseline (it was 1 375 MB
when Gradio decoded first), and the person sees facr's line; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import append_section, check_floor, run  # noqa: E402

FLOOR_MB = 64.0

READ = {
    "before": "from gradio.data_classes import ImageData\n"
              "from gradio.image_utils import preprocess_image\n"
              "def read(path):\n"
              "    pixels = preprocess_image(ImageData(path=path, orig_name='bomb.png'), cache_dir=tmp, "
              "format='webp',\n"
              "                              image_mode='RGB', type='numpy')\n"
              "    return read_image(pixels, name='your picture')\n",
    "after": "def read(path):\n"
             "    return read_image(path, name='your picture')\n",
}
CHILD = """
import sys, tempfile, warnings
from pathlib import Path
from facr.chat.face import FaceError, read_image
warnings.simplefilter('ignore')
tmp = tempfile.mkdtemp()
{read}
def kib(key):
    return next(int(l.split()[1]) for l in Path('/proc/self/status').read_text().splitlines() if l.startswith(key))
base = kib('VmRSS:')
try:
    read(sys.argv[1])
    message = 'accepted'
except FaceError as exc:
    message = f'facr: {{exc}}'
print((kib('VmHWM:') - base) / 1024, message, sep='\\t')
"""


def main(argv=None) -> int:
    from PIL import Image

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", type=int, default=12000)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-append", action="store_true", help="do not append the table to BENCHMARKS.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.png"
        Image.new("L", (args.side, args.side), 0).save(bomb)  # one grey value: zlib shrinks it ~1000x
        size_kb = bomb.stat().st_size / 1024
        rows = {}
        for name, read in READ.items():
            out = subprocess.run([sys.executable, "-c", CHILD.format(read=read), str(bomb)], capture_output=True,
                                 text=True, check=True).stdout.strip().splitlines()[-1]
            mb, message = out.split("\t")
            rows[name] = {"peak_mb": float(mb), "message": message}
    table = ("| reading the upload | peak memory over baseline | what the person sees |\n| --- | --- | --- |\n"
             + "\n".join(f"| {k}: {'Gradio decodes, then facr checks' if k == 'before' else 'facr reads the header'} "
                         f"| {v['peak_mb']:.0f} MB | `{v['message']}` |" for k, v in rows.items())
             + f"\n\nThe upload: a {args.side}×{args.side} PNG of {size_kb:.0f} KB. "
               f"Ratio before / after: {rows['before']['peak_mb'] / max(rows['after']['peak_mb'], 0.1):.0f}×.")
    if not args.no_append:
        append_section(f"Refusing a decompression-bomb upload in the chat ({args.side}² PNG)", table,
                       "Each row is its own fresh process; peak = VmHWM minus VmRSS just before the upload is read.")
    print(json.dumps(rows, indent=2) if args.json else table)
    after = rows["after"]
    refused = after["message"].startswith("facr: ")
    return check_floor("MB over baseline to refuse the bomb with facr's line (inf when not refused)",
                       after["peak_mb"] if refused else float("inf"), FLOOR_MB, at_most=True)


if __name__ == "__main__":
    sys.exit(run(main))
