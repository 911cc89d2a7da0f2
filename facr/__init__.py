"""facr: faithful action-unit causal reasoning for facial-emotion explanations.

The Python API a user starts from, imported lazily (``import facr`` loads neither torch nor
transformers; each name loads its module on first use):

* the graph — :class:`AUGraph`, :func:`load_graph` and :func:`save_graph` (a facr-graph file),
  :func:`resolve_graph` (a file or a built-in name: ``"emfacs"``, ``"pspi"``);
* the reasoner — :class:`Reasoner`, :func:`load_reasoner` (a checkpoint folder → (model, graph));
  the AU head on z alone — :func:`load_head`, :func:`load_default_head` (the shipped real-face head);
* the one intervention — :func:`do` (do(z_k = v)) and :func:`intervention_effects` (every
  single-AU intervention on a batch at once);
* audits — :class:`AuditRequest` and :func:`run_audit` (what ``facr audit`` runs; ``facr.audit``
  is the subpackage, so the function has its own name here);
* the verbalizer — :func:`load_verbalizer`, :class:`RationalePlan`, :func:`check_rationale`;
* the explainer — :class:`Explainer` (readings, what-ifs and checks on one face, as the chat uses them).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> its module, or (module, the name there)
_API: dict[str, str | tuple[str, str]] = {
    "AUGraph": "facr.graph.core",
    "load_graph": "facr.graph.io",
    "save_graph": "facr.graph.io",
    "resolve_graph": "facr.graph.io",
    "Reasoner": "facr.models.reasoner",
    "load_reasoner": "facr.models.reasoner",
    "load_head": "facr.frontends.head",
    "load_default_head": "facr.frontends.head",
    "do": "facr.causal",
    "intervention_effects": "facr.causal",
    "AuditRequest": "facr.audit.auditors",
    "run_audit": ("facr.audit.auditors", "audit"),
    "load_verbalizer": "facr.verbalizer.model",
    "RationalePlan": "facr.verbalizer.plan",
    "check_rationale": "facr.verbalizer.wellformed",
    "Explainer": "facr.chat.explainer",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'facr' has no attribute {name!r}")
    module, attr = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
