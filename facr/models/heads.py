"""The emotion heads a reasoner can put on its AU latent, by name (``head:`` in a training config):
one :class:`~facr.registry.Registry` in the style of the auditors, dataset formats, backbones and
map methods.

A head is either *z-only* — ŷ is a function of z alone (``mlp``, ``linear``, ``graph``), so a stored z
can be intervened on without the image, and the same head serves the AU-vector head of
:mod:`facr.frontends.head` — or reads more of the image than z (``agcm``: AGCM's concept
embeddings, registered by :mod:`facr.models.agcm`). The registry names each head's module, so
:meth:`~facr.registry.Registry.names` lists them all without importing one.

``mlp`` and ``linear`` may read any AU for any class: the counterfactual-faithfulness objective
teaches them which to read. ``graph`` (:class:`GraphHead`) gives each class its own small MLP over its
parents in G, so an AU outside Pa(c) cannot move ŷ_c at all.

>>> sorted(HEADS.names())
['agcm', 'graph', 'linear', 'mlp']
>>> HEADS["linear"].z_only, HEADS["agcm"].z_only
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facr.registry import Registry


@dataclass(frozen=True)
class HeadSpec:
    """One emotion head.

    ``modules(dim, K, C, config)`` builds the reasoner's modules after its encoder (encoder width
    ``dim``, K AUs, C classes, the :class:`~facr.models.reasoner.ReasonerConfig`), as attribute name
    → module in creation order: the names are the checkpoint's keys. ``z_head(K, C, hidden,
    dropout, signs)``, for z-only heads: the z → logits module alone (``signs``: G's ``[K, C]`` sign
    matrix or None; only ``graph`` reads it).
    """

    name: str
    help: str
    modules: Callable[[int, int, int, Any], dict[str, nn.Module]]
    z_head: Callable[[int, int, int, float, Any], nn.Module] | None = None

    @property
    def z_only(self) -> bool:
        """Whether ŷ reads z alone (see the module docstring)."""
        return self.z_head is not None


HEADS: Registry[HeadSpec] = Registry("emotion head", {"mlp": __name__, "linear": __name__, "graph": __name__,
                                                      "agcm": "facr.models.agcm"})


class GraphHead(nn.Module):
    """G as the head's wiring: each class c has its own MLP over its parents in G,

        ŷ_c = b_c + v_c · GELU(W_c (m_c ⊙ z) + a_c),   m_c = 1 on Pa(c), 0 elsewhere,

    so ŷ_c does not depend on any AU outside Pa(c). What the counterfactual-faithfulness objective
    only encourages in an ``mlp`` head holds here by construction: do(z_k = 0) on an AU outside Pa(c)
    leaves ŷ_c exactly where it was (counterfactual invariance 1 at any ε), and so does any change of
    such an AU's z_k, however small (in pixels, leakage into a non-parent never reaches ŷ_c). A class
    without parents (neutral) has a constant logit: it wins where no other class's parents are seen.
    Which way each parent moves ŷ_c is left to L_sens, as in the ``mlp`` head.
    ``signs``: G's ``[K, C]`` sign matrix (:meth:`facr.graph.AUGraph.sign_matrix`); only its support
    is used, as a buffer rebuilt from the config (not stored in the weights). ``hidden``: units per
    class (``head_hidden`` of the config).
    """

    def __init__(self, signs, hidden: int = 16, dropout: float = 0.0):
        super().__init__()
        signs = np.asarray(signs)  # checked in numpy: a checkpoint's shapes are first built on the meta device
        if signs.ndim != 2 or not np.isin(signs, (-1, 0, 1)).all():
            raise ValueError(f"head graph: signs must be a [K, C] matrix of -1, 0 and +1, got shape {signs.shape}")
        K, C = signs.shape
        self.register_buffer("mask", torch.as_tensor((signs != 0).T.astype(np.float32))[:, None, :],
                             persistent=False)  # [C, 1, K]
        # as nn.Linear(K, hidden) and nn.Linear(hidden, 1) per class initialise themselves
        bound1, bound2 = 1.0 / K**0.5, 1.0 / hidden**0.5
        self.w1 = nn.Parameter(torch.empty(C, hidden, K).uniform_(-bound1, bound1))
        self.b1 = nn.Parameter(torch.empty(C, hidden).uniform_(-bound1, bound1))
        self.w2 = nn.Parameter(torch.empty(C, hidden).uniform_(-bound2, bound2))
        self.b2 = nn.Parameter(torch.empty(C).uniform_(-bound2, bound2))
        self.dropout = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w1 = (self.w1 * self.mask).to(z.dtype)  # [C, H, K]: class c's units read Pa(c) only
        h = self.dropout(F.gelu(torch.einsum("...k,chk->...ch", z, w1) + self.b1.to(z.dtype)))
        return torch.einsum("...ch,ch->...c", h, self.w2.to(z.dtype)) + self.b2.to(z.dtype)


def check_edges(head: str, edges: dict[str, dict[str, int]] | None, aus: Sequence[str],
                classes: Sequence[str]) -> dict[str, dict[str, int]] | None:
    """The ``edges`` field of a config whose head is ``head``, its AUs canonical; ValueError when head
    graph lacks them, another head has them, or an edge does not fit ``aus`` / ``classes``."""
    from facr import au as au_vocab

    if (head == "graph") != (edges is not None):
        raise ValueError("edges: head graph is wired by G's edges, and only head graph reads them "
                         f"(head {head}, edges {'given' if edges is not None else 'missing'})")
    if edges is None:
        return None
    edges = {c: {au_vocab.canonical(a): s for a, s in parents.items()} for c, parents in edges.items()}
    edge_signs(edges, aus, classes)
    return edges


def edge_signs(edges: dict[str, dict[str, int]], aus: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """The ``[K, C]`` sign matrix of ``edges`` (``{class: {AU: ±1}}``, as
    :func:`facr.audit.metrics.parents_from_signs` writes it) in the order of ``aus`` / ``classes``;
    ValueError names an edge that does not fit them."""
    out = np.zeros((len(aus), len(classes)), dtype=np.int8)
    for c, parents in edges.items():
        if c not in classes:
            raise ValueError(f"edges: class {c!r} is not one of the head's classes")
        for a, sign in parents.items():
            if a not in aus:
                raise ValueError(f"edges: {a} → {c}: {a} is not in the latent's AUs")
            if sign not in (-1, 1):
                raise ValueError(f"edges: {a} → {c}: the sign must be -1 or 1, got {sign!r}")
            out[list(aus).index(a), list(classes).index(c)] = sign
    return out


def config_signs(config) -> np.ndarray | None:
    """G's ``[K, C]`` sign matrix from a head's config (a reasoner's or an AU head's: its ``edges``, ``aus``
    and ``classes``); None for a head without edges (every head but ``graph``)."""
    return None if config.edges is None else edge_signs(config.edges, config.aus, config.classes)


def z_only_heads() -> tuple[str, ...]:
    """The names of the z-only heads (those an AU head on any front end can be), in registry order."""
    return tuple(n for n in HEADS.names() if HEADS[n].z_only)


def _z_only(name: str, help: str, z_head: Callable[[int, int, int, float, Any], nn.Module]) -> HeadSpec:
    def modules(dim: int, K: int, C: int, config) -> dict[str, nn.Module]:
        if config.au_readout == "attention":
            from facr.models.readout import AttentionReadout

            to_au = AttentionReadout(dim, K)
        else:
            to_au = nn.Linear(dim, K)  # first: the initialisation order of every checkpoint so far
        return {"to_au": to_au, "head": z_head(K, C, config.head_hidden, config.dropout, config_signs(config))}

    return HEADS.register(name, HeadSpec(name, help, modules, z_head))


def _graph_head(K: int, C: int, hidden: int, dropout: float, signs) -> GraphHead:
    if signs is None:
        raise ValueError("head graph is wired by the graph's edges: give them (ReasonerConfig.edges)")
    if np.shape(signs) != (K, C):
        raise ValueError(f"head graph: signs must be [{K}, {C}], got {list(np.shape(signs))}")
    return GraphHead(signs, hidden, dropout)


_z_only("mlp", "z → hidden → GELU → dropout → classes (the paper's head)",
        lambda K, C, hidden, dropout, signs: nn.Sequential(nn.Linear(K, hidden), nn.GELU(), nn.Dropout(dropout),
                                                           nn.Linear(hidden, C)))
_z_only("linear", "z → classes, one weight per (AU, class)", lambda K, C, hidden, dropout, signs: nn.Linear(K, C))
_z_only("graph", "one small MLP per class over its parents in G only (an AU outside Pa(c) cannot move ŷ_c)",
        _graph_head)


def build_head(kind: str, n_aus: int, n_classes: int, hidden: int = 64, dropout: float = 0.0,
               signs=None) -> nn.Module:
    """The z → ŷ module of a z-only head: the one the reasoner puts on its encoder and the AU-vector
    head of :mod:`facr.frontends.head` puts on any front end (``signs``: G's sign matrix, for ``graph``)."""
    spec = HEADS.get(kind)
    if spec is None or spec.z_head is None:
        z_only = z_only_heads()
        raise ValueError(f"a z-only head is {', '.join(z_only[:-1])} or {z_only[-1]}, got {kind!r}")
    return spec.z_head(n_aus, n_classes, hidden, dropout, signs)
