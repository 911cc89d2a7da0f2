"""Stage 2: train the gated verbalizer on a frozen reasoner.

    accelerate launch recipes/train_verbalizer.py --config recipes/configs/verbalizer_synth.yaml
    python recipes/train_verbalizer.py --reasoner runs/r --data demo-out/synth --backbone tiny-qwen3 --max-steps 20

The same code as ``facr train verbalizer``; every flag overrides its config field.
"""

import sys

from facr.train_args import recipe_main
from facr.verbalizer.train import add_verbalizer_arguments, run_from_args

if __name__ == "__main__":
    sys.exit(recipe_main(__doc__, add_verbalizer_arguments, run_from_args))
