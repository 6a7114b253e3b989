"""Load a paper's profile block from ``papers/<paper>/config.yaml`` and validate it.

Each paper's ``config.schema.yaml`` is a JSON Schema for ONE profile block. Errors name the
file, the profile and the offending key, and are raised before anything is computed. Shared
schemas are referenced by URI: ``$ref: "urn:sltrepro:sampler"`` is the LLC sampler block
(:data:`sltrepro.llc_settings.SAMPLER_SCHEMA`).
"""

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
