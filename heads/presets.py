"""The published benchmarks' protocols by name: which generators a paper trains on (every other
is tested on). Generator names are matched loosely (case, spaces and punctuation ignored), since
each release of a dataset spells its folders its own way ("Stable Diffusion V1.4",
"stable_diffusion_v_1_4")."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """A published protocol: the layout its dataset comes in and the generators trained on."""

    name: str
    layout: str
    train_on: tuple[str, ...]
    description: str


PRESETS = {preset.name: preset for preset in (
    Preset("genimage-sdv14", "genimage", ("Stable Diffusion V1.4",),
           "GenImage (Zhu et al., NeurIPS 2023): train on Stable Diffusion V1.4, test on all eight generators"),
    Preset("forensynths-progan", "forensynths", ("progan",),
           "ForenSynths (Wang et al., CVPR 2020): train on ProGAN, test on the other generators"),
)}


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


def match_names(wanted: dict[str, tuple[str, ...]], stored: list[str]) -> dict[str, str | None]:
    """For each wanted name (with its aliases), the stored generator it names, however spelt
    (None: not stored)."""
    by_key = {_key(generator): generator for generator in stored}
    return {name: next((by_key[_key(n)] for n in (name, *aliases) if _key(n) in by_key), None)
            for name, aliases in wanted.items()}


def preset_train_on(name: str, stored: list[str]) -> tuple[str, ...]:
    """The stored generators that preset ``name`` trains on; raises ``ValueError`` saying what is
    missing."""
    if name not in PRESETS:
        raise ValueError(f"Expected --preset in {', '.join(PRESETS)}, but got {name!r}. Name one of those, or "
                         "give --train-on G1,G2.")
    preset = PRESETS[name]
    found = match_names({wanted: () for wanted in preset.train_on}, stored)
    missing = [wanted for wanted, generator in found.items() if generator is None]
    if missing:
        raise ValueError(f"Expected the store to hold {', '.join(missing)} for the {name} protocol, but its generators "
                         f"are {', '.join(stored) or 'none'}. Ingest the dataset with --layout {preset.layout} "
                         f"(or give its folder to `synthwatch benchmark PATH --preset {name}`).")
    return tuple(found.values())
