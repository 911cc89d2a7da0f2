"""The emotion heads a reasoner can put on its AU latent, by name (``head:`` in a training config):
one :class:`~facr.registry.Registry` in the style of the auditors, dataset formats, backbones and
map methods.

A head is either *z-only* — ŷ is a function of z alone (``mlp``, ``linear``), so a stored z can be
intervened on without the image, and the same head serves the AU-vector head of
:mod:`facr.frontends.head` — or reads more of the image than z (``agcm``: AGCM's concept
embeddings, registered by :mod:`facr.models.agcm`). The registry names each head's module, so
:meth:`~facr.registry.Registry.names` lists them all without importing one.

>>> sorted(HEADS.names())
['agcm', 'linear', 'mlp']
>>> HEADS["linear"].z_only, HEADS["agcm"].z_only
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from facr.registry import Registry


@dataclass(frozen=True)
class HeadSpec:
    """One emotion head.

    ``modules(dim, K, C, config)`` builds the reasoner's modules after its encoder (encoder width
    ``dim``, K AUs, C classes, the :class:`~facr.models.reasoner.ReasonerConfig`), as attribute name
    → module in creation order: the names are the checkpoint's keys. ``z_head(K, C, hidden,
    dropout)``, for z-only heads: the z → logits module alone.
    """

    name: str
    help: str
    modules: Callable[[int, int, int, Any], dict[str, nn.Module]]
    z_head: Callable[[int, int, int, float], nn.Module] | None = None

    @property
    def z_only(self) -> bool:
        """Whether ŷ reads z alone (see the module docstring)."""
        return self.z_head is not None


HEADS: Registry[HeadSpec] = Registry("emotion head", {"mlp": __name__, "linear": __name__,
                                                      "agcm": "facr.models.agcm"})


def _z_only(name: str, help: str, z_head: Callable[[int, int, int, float], nn.Module]) -> HeadSpec:
    def modules(dim: int, K: int, C: int, config) -> dict[str, nn.Module]:
        if config.au_readout == "attention":
            from facr.models.readout import AttentionReadout

            to_au = AttentionReadout(dim, K)
        else:
            to_au = nn.Linear(dim, K)  # first: the initialisation order of every checkpoint so far
        return {"to_au": to_au, "head": z_head(K, C, config.head_hidden, config.dropout)}

    return HEADS.register(name, HeadSpec(name, help, modules, z_head))


_z_only("mlp", "z → hidden → GELU → dropout → classes (the paper's head)",
        lambda K, C, hidden, dropout: nn.Sequential(nn.Linear(K, hidden), nn.GELU(), nn.Dropout(dropout),
                                                    nn.Linear(hidden, C)))
_z_only("linear", "z → classes, one weight per (AU, class)", lambda K, C, hidden, dropout: nn.Linear(K, C))


def build_head(kind: str, n_aus: int, n_classes: int, hidden: int = 64, dropout: float = 0.0) -> nn.Module:
    """The z → ŷ module of a z-only head: the one the reasoner puts on its encoder and the AU-vector
    head of :mod:`facr.frontends.head` puts on any front end."""
    spec = HEADS.get(kind)
    if spec is None or spec.z_head is None:
        z_only = [n for n in HEADS.names() if HEADS[n].z_only]
        raise ValueError(f"a z-only head is {' or '.join(z_only)}, got {kind!r}")
    return spec.z_head(n_aus, n_classes, hidden, dropout)
