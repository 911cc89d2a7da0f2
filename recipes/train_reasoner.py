"""Stage 1: train the faithful AU reasoner.

    accelerate launch recipes/train_reasoner.py --config recipes/configs/reasoner_synth.yaml
    python recipes/train_reasoner.py --config recipes/configs/reasoner_synth.yaml --faith off --out runs/nofaith

The same code as ``facr train reasoner``; every flag overrides its config field.
"""

import sys

from facr.train_args import add_train_arguments, recipe_main, run_from_args

if __name__ == "__main__":
    sys.exit(recipe_main(__doc__, add_train_arguments, lambda args: run_from_args(args).metrics))
