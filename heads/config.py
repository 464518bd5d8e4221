"""One settings file per store, ``synthwatch.toml`` in its root: the backbone to embed with, the
gate's policy, drift's alpha, the target false-positive rate, the training bound and the cycle's
schedule. Precedence, highest first: command-line flags (or keyword arguments of the Python API),
``SYNTHWATCH_*`` environment variables (``SYNTHWATCH_GATE__AUROC_FLOOR=0.8``), the file, the
built-in defaults."""

from __future__ import annotations

import json
import logging
import tomllib
from contextvars import ContextVar
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from synthwatch.embeddings.registry import DEFAULT_BACKBONE
from synthwatch.heads.defaults import DEFAULT_ALPHA, DEFAULT_HEAD, DEFAULT_TARGET_FPR, EMBEDDING_HEADS
from synthwatch.heads.gate import GatePolicy
from synthwatch.heads.replay import DEFAULT_MAX_EVAL, DEFAULT_MAX_TRAIN
from synthwatch.store.atomic import atomic_write_bytes
from synthwatch.store.errors import StoreError
from synthwatch.store.watched import check_cron, parse_duration

log = logging.getLogger(__name__)
CONFIG_FILE = "synthwatch.toml"
ENV_PREFIX = "SYNTHWATCH_"
_reading: ContextVar[Path | None] = ContextVar("synthwatch_config_file", default=None)


class Schedule(BaseModel):
    """When ``synthwatch deploy`` runs a whole cycle over every watched source (besides each
    source's own ``--schedule`` / ``--every``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = Field(None, description="cron expression, for example '0 * * * *'")
    every: str | None = Field(None, description="interval: 30s, 15m, 6h, 1d")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str | None) -> str | None:
        return None if cron is None else _checked(check_cron, cron)

    @field_validator("every")
    @classmethod
    def _valid_every(cls, every: str | None) -> str | None:
        return None if every is None else (_checked(parse_duration, every) and every)

    @model_validator(mode="after")
    def _one_of(self) -> "Schedule":
        if self.cron and self.every:
            raise ValueError("expected cron or every, not both")
        return self

    @property
    def every_s(self) -> int | None:
        return parse_duration(self.every) if self.every else None


class StoreConfig(BaseSettings):
    """The settings in force for one store (see the module docstring for precedence)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True)

    backbone: str | None = Field(
        None, description="what embed, run, deploy and benchmark embed with (unset: dinov2-small for embed; "
                          "the champion's, else the only one stored, for the others)")
    head: str = Field(DEFAULT_HEAD, description="the head train fits unless --head names one (an embedding head, "
                                                "or the image networks npr and convnext)")
    views: int = Field(0, ge=0, le=499, description="augmented views (downscale, blur, JPEG) embed adds per image "
                                                  "with this backbone, for train to learn from (unless --views)")
    patches: int = Field(0, ge=0, le=500, description="native-resolution patch views embed adds per image with this "
                                                      "backbone, for train to learn from (unless --patches)")
    target_fpr: float = Field(DEFAULT_TARGET_FPR, gt=0, lt=1, description="false-positive rate thresholds are set for")
    alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=1, description="false-alarm rate of each drift check")
    max_train: int = Field(DEFAULT_MAX_TRAIN, ge=1, description="most training rows of a retrain (a replay set)")
    max_eval: int = Field(DEFAULT_MAX_EVAL, ge=1, description="most rows a retrain reads of each of the validation "
                                                              "and test splits (a stable sample)")
    gate: GatePolicy = Field(GatePolicy(), description="the promotion gate (see `synthwatch retrain --help`)")
    schedule: Schedule = Field(Schedule(), description="the continual cycle's schedule under `synthwatch deploy`")

    @field_validator("head")
    @classmethod
    def _known_head(cls, head: str) -> str:
        from synthwatch.heads.network_kinds import NETWORK_HEADS

        if head not in (*EMBEDDING_HEADS, *NETWORK_HEADS):
            raise ValueError(f"expected one of {', '.join((*EMBEDDING_HEADS, *NETWORK_HEADS))}, but got {head!r}")
        return head

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings, file_secret_settings):
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_reading.get())

    @property
    def embedding_head(self) -> str:
        """The head retraining fits: ``head`` when it is an embedding head (retrain, learning curves
        and drift checks work on embeddings), else the default."""
        return self.head if self.head in EMBEDDING_HEADS else DEFAULT_HEAD

    def as_dict(self) -> dict:
        return {**self.model_dump(exclude={"gate"}), "gate": self.gate.as_dict()}


def _checked(check, text: str):
    try:
        return check(text)
    except StoreError as error:  # pydantic reports ValueErrors with the field's name
        raise ValueError(str(error)) from None


def embedding_views(config: StoreConfig, backbone: str, views: int | None = None,
                    patches: int | None = None) -> tuple[int, int]:
    """The augmented and patch views to embed with ``backbone``: each as given, else the store's
    ``views`` and ``patches`` when ``backbone`` is its configured one (they are part of its recipe),
    else none."""
    own = config.backbone is not None and backbone == config.backbone
    return (views if views is not None else config.views if own else 0,
            patches if patches is not None else config.patches if own else 0)


def config_path(root: Path) -> Path:
    return Path(root) / CONFIG_FILE


def load_config(root: Path, overrides: dict | None = None) -> StoreConfig:
    """The settings in force for the store at ``root``; ``overrides`` (flags) win over the
    environment and the file. Raises ``ValueError`` naming the file and the bad key."""
    path = config_path(root)
    token = _reading.set(path)
    try:
        return StoreConfig(**(overrides or {}))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"Expected TOML in {path}, but it does not parse ({error}). Fix the file, or delete it "
                         "to use the defaults.") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg'].rstrip('.')}"
                             for e in error.errors())
        raise ValueError(f"Expected valid settings in {path} (or its {ENV_PREFIX}* environment variables and the "
                         f"flags given), but got: {problems}. Fix them; `synthwatch init --print` shows every key "
                         "with its default.") from None
    finally:
        _reading.reset(token)


def default_config_text() -> str:
    """The file ``init`` writes: every key at its default, described (unset ones commented out)."""
    lines = [f"# synthwatch settings for this store. Flags and {ENV_PREFIX}* environment variables override",
             f"# them ({ENV_PREFIX}TARGET_FPR, {ENV_PREFIX}GATE__AUROC_FLOOR, ...).", ""]
    defaults = StoreConfig.model_construct()
    for name, field in StoreConfig.model_fields.items():
        value = getattr(defaults, name)
        if isinstance(value, (GatePolicy, Schedule)):
            continue
        lines += [f"# {field.description}", _toml_line(name, value)]
    lines += ["", "[gate]", f"# {StoreConfig.model_fields['gate'].description}"]
    lines += [_toml_line(name, value) for name, value in GatePolicy().as_dict().items()]
    lines += ["", "[schedule]", f"# {StoreConfig.model_fields['schedule'].description}: one of"]
    lines += [f"{_toml_line(name, None)}  # {field.description}" for name, field in Schedule.model_fields.items()]
    return "\n".join(lines) + "\n"


def write_default_config(root: Path, *, backbone: str | None = None, replace: bool = False) -> Path | None:
    """Write ``synthwatch.toml`` at its defaults unless one exists and ``replace`` is false; returns
    the path written, else None. ``backbone`` given is recorded; else, without pretrained weights
    on this machine, the best weight-free recipe measured (``heads.recipes.OFFLINE_RECIPE``: its
    backbone, head, augmented and patch views) is recorded and announced in one line."""
    path = config_path(root)
    if path.exists() and not replace:
        return None
    text = default_config_text()
    head, views = None, {}
    if backbone is None:
        recipe = _offline_recipe()
        if recipe is not None:
            backbone, head, views = recipe.backbone, recipe.head, {"views": recipe.views, "patches": recipe.patches}
            extra = " and ".join(f"{count} {name}" for name, count in
                                 (("augmented views", recipe.views), ("patches", recipe.patches)) if count)
            log.warning("no pretrained %s weights here: this store detects with the weight-free %s backbone and the %s "
                        "head%s, the best measured without weights (benchmarks/realworld.py); recorded in %s",
                        DEFAULT_BACKBONE, recipe.backbone, recipe.head,
                        f" trained on {extra} per image too" if extra else "", path)
    if backbone is not None:
        text = text.replace(_toml_line("backbone", None), _toml_line("backbone", backbone))
    if head is not None:
        text = text.replace(_toml_line("head", DEFAULT_HEAD), _toml_line("head", head))
    for name, count in views.items():
        text = text.replace(_toml_line(name, 0), _toml_line(name, count))
    Path(root).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    return path


def _offline_recipe():
    """The recipe a new store records when DINOv2's pretrained weights cannot be had (else None)."""
    from synthwatch.embeddings.loading import pretrained_weights_here
    from synthwatch.embeddings.registry import resolve_spec
    from synthwatch.heads.recipes import default_recipe

    return default_recipe(weights_here=pretrained_weights_here(resolve_spec(DEFAULT_BACKBONE)))


def _toml_line(name: str, value) -> str:
    if value is None:
        return f"# {name} ="
    if isinstance(value, bool):
        return f"{name} = {str(value).lower()}"
    if isinstance(value, str):
        return f"{name} = {json.dumps(value)}"  # a TOML basic string: JSON's escapes are TOML's
    return f"{name} = {value!r}"
