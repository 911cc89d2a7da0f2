"""Stage 2: the verbalizer. Today: its backbone registry and GGUF import (``facr.verbalizer.backbones``)."""
