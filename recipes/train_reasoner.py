"""Stage 1: train the faithful AU reasoner.

    accelerate launch recipes/train_reasoner.py --config recipes/configs/reasoner_synth.yaml
    python recipes/train_reasoner.py --config recipes/configs/reasoner_synth.yaml --faith off --out runs/nofaith

The same code as ``facr train reasoner``; every flag overrides its config field.
"""

import argparse
import json
import sys

from facr.errors import FacrError
from facr.train import run_from_args
from facr.train_args import add_train_arguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        result = run_from_args(args)
    except FacrError as exc:
        print(f"facr: {exc}", file=sys.stderr)
        return 2
    if result.metrics:
        print(json.dumps(result.metrics, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
