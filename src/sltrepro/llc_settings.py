"""The settings of an LLC estimate, validated once, and their JSON schema.

:class:`SamplerSettings` is what :func:`sltrepro.llc.estimate_llc` runs with. Papers keep
the same keys in a block of their ``config.yaml`` and build the object with
:meth:`SamplerSettings.from_config`; their ``config.schema.yaml`` refers to
``SAMPLER_SCHEMA`` (registered as ``urn:sltrepro:sampler`` by :mod:`sltrepro.config`)
instead of restating it:

    llc:
      $ref: "urn:sltrepro:sampler"
      required: [num_chains, num_draws, step_size]
      properties: {per_token_posteriors: {type: boolean}}   # the paper's own extra keys
      unevaluatedProperties: false
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import jsonschema

SCHEMA_URI = "urn:sltrepro:sampler"

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_COUNT = {"type": "integer", "minimum": 1}

SAMPLER_SCHEMA = {
    "$id": SCHEMA_URI,
    "description": "LLC sampler settings (sltrepro.llc_settings.SamplerSettings)",
    "type": "object",
    "properties": {
        "num_chains": {**_COUNT, "description": "chains, all started at w*"},
        "num_draws": {**_COUNT, "description": "steps kept after burn-in, one draw each"},
        "num_burnin": {"type": "integer", "minimum": 0, "description": "steps discarded"},
        "step_size": {**_POSITIVE, "description": "epsilon (SGLD); h^2 for SGNHT"},
        "nbeta": {
            "oneOf": [_POSITIVE, {"type": "null"}],
            "description": "n * beta; null: n / log n",
        },
        "localization": {"type": "number", "minimum": 0, "description": "gamma"},
        "batch_size": {**_COUNT, "description": ">= n: full-batch Langevin dynamics"},
        "sampler": {"enum": ["sgld", "rmsprop_sgld", "sgnht"]},
        "paired": {"type": "boolean", "description": "read each draw minus w* on its batch"},
        "eval_batch_size": _COUNT,
        "max_parallel_chains": {"oneOf": [_COUNT, {"type": "null"}]},
        "vectorize": {"type": ["boolean", "null"]},
        "compile": {"type": "boolean", "description": "torch.compile the chains' forward"},
        "mala_every": {"type": "integer", "minimum": 0, "description": "0: no MALA check"},
        "rmsprop_alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "rmsprop_eps": _POSITIVE,
        "sgnht_diffusion": _POSITIVE,
        "divergence_threshold": {"oneOf": [{"type": "number", "minimum": 0}, {"type": "null"}]},
    },
}


@dataclass(frozen=True)
class SamplerSettings:
    """Everything :func:`sltrepro.llc.estimate_llc` runs with except the model, the data,
    the seed and the device. Validated on construction (``ValueError`` naming the key).
    """

    num_chains: int = 4
    """Chains, all started at w*; they run together in one (C, P) tensor."""
    num_draws: int = 1000
    """Steps after burn-in; each is a draw."""
    num_burnin: int = 0
    """Steps discarded before the first draw."""
    step_size: float = 1e-3
    """SGLD epsilon. For ``rmsprop_sgld`` it multiplies the preconditioner, so useful
    values are larger; for ``sgnht`` it is devinterp's lr (h^2 of Ding et al.)."""
    nbeta: float | None = None
    """n * beta; None: n / log n with n the dataset size (as the papers)."""
    localization: float = 1.0
    """gamma, the strength of the Gaussian tether to w*."""
    batch_size: int = 256
    """Minibatch size (drawn with replacement, per chain and draw); >= n: full batch."""
    sampler: str = "sgld"
    """"sgld", "rmsprop_sgld" or "sgnht" (see :mod:`sltrepro.sgmcmc`)."""
    paired: bool = False
    """Read each draw as loss(w) - loss(w*) on the same minibatch (minibatches only)."""
    eval_batch_size: int = 8192
    """Chunk size of the full-data loss at w*."""
    max_parallel_chains: int | None = None
    """Run chains in groups of at most this many (bounded memory); None: all at once."""
    vectorize: bool | None = None
    """Evaluate chains with vmap (True), a loop (False) or vmap with a loop fallback."""
    compile: bool = False
    """Compile the chains' loss (and so its backward) with ``torch.compile`` before the
    first step; eager with a warning if compiling fails. Same random numbers, but the
    compiled graph rounds differently, so chains agree with eager ones to float tolerance,
    not bitwise (benchmarks/bench_step.py measures the gain of the step: 1.1-1.4x for
    small and mid-size models on an AMD EPYC, 1.4-1.7x on an Intel Xeon, none for large
    matmuls). Off in every profile."""
    mala_every: int = 10
    """MALA acceptance every this many steps after burn-in; 0: never."""
    rmsprop_alpha: float = 0.99
    """RMSprop decay of the running second moment."""
    rmsprop_eps: float = 1.0
    """delta in G = 1 / (sqrt(V) + delta)."""
    sgnht_diffusion: float = 0.01
    """SGNHT diffusion A (and the thermostat's start), devinterp's diffusion_factor."""
    divergence_threshold: float | None = None
    """A chain diverges when nbeta * (L - L(w*)) exceeds this (or is not finite); None:
    max(1e4, 100 * number of parameters). 0 is a threshold, not "unset"."""

    def __post_init__(self):
        errors = sorted(
            jsonschema.Draft202012Validator(SAMPLER_SCHEMA).iter_errors(self.as_dict()),
            key=lambda e: list(e.absolute_path),
        )
        if errors:
            err = errors[0]
            key = ".".join(map(str, err.absolute_path))
            raise ValueError(f"sampler setting {key}: {err.message}")
        for name in ("step_size", "localization", "nbeta", "rmsprop_eps", "sgnht_diffusion"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"sampler setting {name} must be finite, got {value!r}")
        limit = self.divergence_threshold
        if limit is not None and math.isnan(limit):
            raise ValueError("sampler setting divergence_threshold must not be NaN")

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def from_config(cls, block: Mapping, **overrides) -> SamplerSettings:
        """The settings among the entries of a paper's config block (other keys, which the
        paper's schema allows beside them, are left to the paper), then ``overrides``."""
        picked = {k: v for k, v in block.items() if k in cls.names()}
        return cls(**{**picked, **overrides})

    def replace(self, **changes) -> SamplerSettings:
        unknown = set(changes) - self.names()
        if unknown:
            raise ValueError(f"unknown sampler settings {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
