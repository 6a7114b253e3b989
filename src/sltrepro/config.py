"""Load a paper's profile block from ``papers/<paper>/config.yaml`` and validate it.

Each paper's ``config.schema.yaml`` is a JSON Schema for ONE profile block. Errors name the
file, the profile and the offending key, and are raised before anything is computed. Shared
schemas are referenced by URI: ``$ref: "urn:sltrepro:sampler"`` is the LLC sampler block
(:data:`sltrepro.llc_settings.SAMPLER_SCHEMA`).
"""

import hashlib
import json
from pathlib import Path

import jsonschema
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from .llc_settings import SAMPLER_SCHEMA, SCHEMA_URI
from .paths import paper_dir

SHARED_SCHEMAS = Registry().with_resource(SCHEMA_URI, DRAFT202012.create_resource(SAMPLER_SCHEMA))

PROFILES = ("smoke", "cpu", "paper")
DEFAULT_PROFILE = "cpu"


class ConfigError(ValueError):
    """A configuration that cannot be run, with a message that says where and why."""


def read_yaml(path: Path) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: file not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate_block(block: dict, schema: dict, *, where: str) -> None:
    """Raise ConfigError naming every key of ``block`` that breaks ``schema``."""
    validator = jsonschema.Draft202012Validator(schema, registry=SHARED_SCHEMAS)
    errors = sorted(validator.iter_errors(block), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  - key {_key_path(e)}: {e.message}" for e in errors]
        raise ConfigError(f"{where} is invalid:\n" + "\n".join(lines))


def load_profile(paper: str, profile: str) -> dict:
    """The validated config block of ``paper`` for ``profile``.

    Raises ConfigError for an unknown profile, a missing block, a missing key or a wrong
    type; ValueError for an unknown paper.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    folder = paper_dir(paper)
    path = folder / "config.yaml"
    config = read_yaml(path)
    if profile not in config:
        raise ConfigError(f"{path}: no block for profile {profile!r}")
    block = config[profile]
    if not isinstance(block, dict):
        raise ConfigError(f"{path}: profile {profile!r} must be a mapping")
    schema = read_yaml(folder / "config.schema.yaml")
    validate_block(block, schema, where=f"{path} (profile {profile!r})")
    return block


# run_step resolves every step's device from the block, so every step reads this key.
ALWAYS_READ = ("device",)


def reads_spec(block: dict, keys, *, where: str = "config") -> str:
    """The ``--reads`` value a rule passes its step: ``key,key.sub,...@digest``.

    ``keys`` are the keys of the profile ``block`` the step reads: top-level names, or dotted
    paths into sub-blocks (``regression.llc``). The digest hashes exactly their values, so a
    rule that passes this string as a Snakemake ``param`` reruns when, and only when, one of
    those values changes.
    """
    keys = sorted(set(keys) | set(ALWAYS_READ))
    return f"{','.join(keys)}@{_digest({k: _at(block, k, where) for k in keys})}"


def _at(block: dict, dotted: str, where: str):
    value = block
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(f"{where}: a rule declares it reads {dotted!r}, which is not there")
        value = value[part]
    return value


def _digest(values: dict) -> str:
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class DeclaredConfig(dict):
    """The part of a profile block that a step declared it reads (see :func:`reads_spec`).

    Reading any other key of the block is a ConfigError rather than a silent read: an
    undeclared key is outside the rule's digest, so editing it would not rerun the rule.
    """

    @classmethod
    def select(cls, block: dict, spec: str, *, where: str) -> "DeclaredConfig":
        """The view of ``block`` that a ``--reads`` ``spec`` declares, checked against it."""
        names, sep, digest = spec.partition("@")
        keys = [k for k in names.split(",") if k]
        if not sep or not keys:
            raise ConfigError(f"--reads expects key,key.sub,...@digest, got {spec!r}")
        now = reads_spec(block, keys, where=where).partition("@")[2]
        if now != digest:
            raise ConfigError(
                f"{where} changed after this job was scheduled ({names}: digest {digest}, "
                f"now {now}); run the workflow again"
            )
        return cls._view(block, keys, where)

    @classmethod
    def _view(cls, block: dict, keys: list[str], where: str) -> "DeclaredConfig":
        whole = {k for k in keys if "." not in k}
        nested: dict[str, list[str]] = {}
        for key in keys:
            head, _, rest = key.partition(".")
            if rest and head not in whole:
                nested.setdefault(head, []).append(rest)
        view = cls({k: block[k] for k in whole})
        for head, rest in nested.items():
            view[head] = cls._view(block[head], rest, f"{where}, block {head!r}")
        view._undeclared = frozenset(block) - frozenset(view)
        view._where = where
        return view

    def _refuse(self, key):
        raise ConfigError(
            f"this step reads config key {key!r} of {self._where}, but its rule does not "
            "declare it: add it to the rule's reads(...) in the paper's workflow file"
        )

    def __missing__(self, key):
        if key in self._undeclared:
            self._refuse(key)
        raise KeyError(key)

    def get(self, key, default=None):
        if key in self._undeclared:
            self._refuse(key)
        return super().get(key, default)

    def __contains__(self, key):
        if key in self._undeclared:
            self._refuse(key)
        return super().__contains__(key)
