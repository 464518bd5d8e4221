"""Training and scoring image networks (``synthwatch.heads.network_kinds``): resumable, seeded, bf16 on CUDA.

Batches are half real, half synthetic, drawn from the images given (the caller passes the
training split); each draw is augmented as the embedding views are (downscale, blur, JPEG, random
crop) and seeded by (seed, image id, draw), so a resumed run sees the images it would have seen.
Every ``checkpoint_every`` steps the network and the optimiser state are written as safetensors,
and a killed run resumes from the last checkpoint, ending with the weights an uninterrupted run
ends with. Scores are the sigmoid of the mean logit over each image's tiles.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn
from torch.utils.data import DataLoader, Dataset

from synthwatch.embeddings.decode import STORED_IMAGE_LIMITS, decode_image, read_image_file
from synthwatch.embeddings.engine import resolve_device
from synthwatch.embeddings.views import perturb, view_rng
from synthwatch.embeddings.workers import dying_with_this_process
from synthwatch.heads.network_kinds import NetworkKind, NetworkOptions, kind_for_head
from synthwatch.heads.networks import build_network, scoring_pixels, training_pixels
from synthwatch.store.atomic import atomic_write_bytes

__all__ = ["ImageItem", "TrainedNetwork", "balanced_draws", "network_bytes", "network_from_bytes", "score_images",
           "score_items", "train_network"]


@dataclass(frozen=True)
class ImageItem:
    """An image to train on or score: where its bytes are, its label, and the view to take."""

    image_id: str
    path: str
    label: int = 0
    view: int = 0


@dataclass
class TrainedNetwork:
    """A trained network with its kind, the options it was trained with, and what the run did."""

    network: nn.Module
    kind: NetworkKind
    options: NetworkOptions
    info: dict


class _Draws(Dataset):
    """Augmented training pixels of image items, each draw seeded by its position in the run."""

    def __init__(self, items: Sequence[ImageItem], kind: NetworkKind, options: NetworkOptions, offset: int) -> None:
        self.items, self.kind, self.seed, self.offset = items, kind, options.seed, offset
        self.spec = kind.spec(options)
        self.decoded = _DecodedCache()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        item = self.items[position]
        rng = view_rng(self.seed, item.image_id, self.offset + position)
        pixels = training_pixels(self.kind, self.decoded.get(item.path), rng, self.spec)
        return pixels, torch.tensor(float(item.label))


class _DecodedCache:
    """Decoded training images kept in memory, the least recently used dropped past ``max_pixels``
    (a run draws each image many times; decoding it each time costs more than the step)."""

    def __init__(self, max_pixels: int = 300_000_000) -> None:  # about 900 MB of RGB
        self.max_pixels, self.pixels, self.images = max_pixels, 0, OrderedDict()

    def get(self, path: str):
        image = self.images.pop(path, None)
        if image is None:
            image = _decoded(path)
            self.pixels += image.width * image.height
        self.images[path] = image
        while self.pixels > self.max_pixels and len(self.images) > 1:
            _, dropped = self.images.popitem(last=False)
            self.pixels -= dropped.width * dropped.height
        return image


class _Tiles(Dataset):
    """Scoring tiles of image items (their clean view, or the robustness view they name)."""

    def __init__(self, items: Sequence[ImageItem], kind: NetworkKind, options: NetworkOptions) -> None:
        self.items, self.kind, self.seed, self.spec = items, kind, options.seed, kind.spec(options)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> torch.Tensor:
        item = self.items[position]
        image = _decoded(item.path)
        if item.view:
            image, _ = perturb(image, item.view, view_rng(self.seed, item.image_id, item.view))
        return scoring_pixels(self.kind, image, self.spec)


def _decoded(path: str):
    return decode_image(read_image_file(path, STORED_IMAGE_LIMITS), STORED_IMAGE_LIMITS)[0]


def _image_tiles(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """A loader batch as it came: each image's tiles (images differ in tile count and size)."""
    return batch


def balanced_draws(items: Sequence[ImageItem], count: int, seed: int) -> list[ImageItem]:
    """``count`` items alternating real and synthetic, each side drawn uniformly with replacement."""
    sides = [[i for i in items if i.label == label] for label in (0, 1)]
    if not sides[0] or not sides[1]:
        raise ValueError(f"Expected real and synthetic training images, but got {len(sides[0])} real and "
                         f"{len(sides[1])} synthetic.")
    picks = [np.random.default_rng([seed, label]).integers(0, len(side), count) for label, side in enumerate(sides)]
    return [sides[k % 2][picks[k % 2][k]] for k in range(count)]


def train_network(items: Sequence[ImageItem], options: NetworkOptions, *, checkpoint_dir: Path,
                  progress: Callable[[int, float], None] | None = None) -> TrainedNetwork:
    """Train a network of ``options.head`` on ``items`` for ``options.steps`` steps, resuming from
    ``checkpoint_dir``."""
    options = options.resolved()
    kind = kind_for_head(options.head)
    device = resolve_device(options.device)
    network = build_network(kind, options, pretrained=True).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    start = _resume(checkpoint_dir, network, optimiser, device)
    first = start * options.batch_size
    draws = balanced_draws(items, options.steps * options.batch_size, options.seed)[first:]
    loader = DataLoader(_Draws(draws, kind, options, offset=first), batch_size=options.batch_size,
                        num_workers=options.workers, pin_memory=device.type == "cuda",
                        worker_init_fn=dying_with_this_process())
    loss_fn = nn.BCEWithLogitsLoss()
    network.train()
    losses = []
    step = start
    for pixels, labels in loader:
        pixels, labels = pixels.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with _autocast(device, options.mixed_precision):
            loss = loss_fn(network(pixels).float(), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        losses.append(loss.item())
        if progress is not None:
            progress(step, losses[-1])
        if step % options.checkpoint_every == 0 or step == options.steps:
            _checkpoint(checkpoint_dir, network, optimiser, step)
    network.eval()
    info = {"steps": step, "resumed_from": start, "device": device.type,
            "final_loss": round(float(np.mean(losses[-10:])), 6) if losses else None}
    return TrainedNetwork(network, kind, options, info)


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and enabled)


@torch.inference_mode()
def score_items(trained: TrainedNetwork, items: Sequence[ImageItem], *, images_per_batch: int = 16,
                device: str = "auto") -> np.ndarray:
    """P(synthetic) of each item's view, (n,) float64."""
    target = resolve_device(device)
    trained.network.to(target).eval()
    loader = DataLoader(_Tiles(items, trained.kind, trained.options), batch_size=images_per_batch,
                        collate_fn=_image_tiles)
    scores = [_mean_logit_scores(trained.network, tiles, target, trained.options.mixed_precision) for tiles in loader]
    return np.concatenate(scores) if scores else np.zeros(0)


@torch.inference_mode()
def score_images(trained: TrainedNetwork, images: Sequence) -> np.ndarray:
    """P(synthetic) of decoded RGB images (clean view, on the network's device), (n,) float64."""
    if not images:
        return np.zeros(0)
    device = next(trained.network.parameters()).device
    spec = trained.kind.spec(trained.options)
    tiles = [scoring_pixels(trained.kind, image, spec) for image in images]
    return _mean_logit_scores(trained.network, tiles, device, trained.options.mixed_precision)


def _mean_logit_scores(network: nn.Module, tiles: list[torch.Tensor], device: torch.device,
                       mixed_precision: bool) -> np.ndarray:
    """Sigmoid of each image's mean tile logit; tiles of one size go through the network together."""
    sums, counts = torch.zeros(len(tiles)), torch.tensor([len(t) for t in tiles], dtype=torch.float32)
    for shape in {t.shape[1:] for t in tiles}:
        members = [i for i, t in enumerate(tiles) if t.shape[1:] == shape]
        joined = torch.cat([tiles[i] for i in members])
        owners = torch.cat([torch.full((len(tiles[i]),), i) for i in members])
        with _autocast(device, mixed_precision):
            logits = network(joined.to(device)).float().cpu()
        sums.index_add_(0, owners, logits)
    return torch.sigmoid(sums / counts).numpy().astype(np.float64)


def network_bytes(network: nn.Module) -> bytes:
    return save_tensors({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()})


def network_from_bytes(options: NetworkOptions, data: bytes) -> TrainedNetwork:
    """The network a record's ``network.safetensors`` holds, built as ``options`` say (weights are
    set from the file: nothing is executed or unpickled)."""
    options = options.resolved()
    kind = kind_for_head(options.head)
    network = build_network(kind, options, pretrained=False)
    network.load_state_dict(load_tensors(data))
    return TrainedNetwork(network.eval(), kind, options, {})


def _checkpoint(folder: Path, network: nn.Module, optimiser: torch.optim.Optimizer, step: int) -> None:
    """Network and optimiser state as safetensors, then a JSON pointer to them (written last)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    state = optimiser.state_dict()
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"optimiser.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    name = f"checkpoint-{step:08d}.safetensors"
    atomic_write_bytes(folder / name, save_tensors(tensors))
    atomic_write_bytes(folder / "checkpoint.json", json.dumps({"step": step, "file": name}).encode())
    for old in folder.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def _resume(folder: Path, network: nn.Module, optimiser: torch.optim.Optimizer, device: torch.device) -> int:
    """Load the last checkpoint in ``folder`` if there is one; return its step (else 0)."""
    try:
        pointer = json.loads((folder / "checkpoint.json").read_text())
        tensors = load_tensors((folder / pointer["file"]).read_bytes())
    except FileNotFoundError:
        return 0
    except (ValueError, KeyError, SafetensorError) as error:
        warnings.warn(f"the checkpoint in {folder} is damaged ({error}); training starts again from step 0")
        return 0
    network.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state = optimiser.state_dict()
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimiser."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value.to(device) if name != "step" else value
    state["state"] = slots
    optimiser.load_state_dict(state)
    return int(pointer["step"])
