"""Stage 2: train the gated verbalizer. Runs under `accelerate launch` or plain python.

    accelerate launch recipes/train_verbalizer.py --config recipes/configs/verbalizer_synth.yaml
    python recipes/train_verbalizer.py --reasoner runs/r --data demo-out/synth --backbone tiny-qwen3 --max-steps 20

The same code as `facr train verbalizer` (facr.verbalizer.train).
"""

import sys

from facr.verbalizer.train import main

if __name__ == "__main__":
    sys.exit(main())
