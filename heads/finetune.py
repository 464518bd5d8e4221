"""ConvNeXt fine-tuning: the whole network trained end to end on images, for users with a GPU.

Batches are half real, half synthetic, drawn from the training split of the images (by source
group, as for the embedding heads); each draw is augmented as the embedding views are
(downscale, blur, JPEG, random crop), seeded by (seed, image id, draw), so a resumed run sees
the images it would have seen. Mixed precision (bf16) on CUDA. Every ``checkpoint_every``
steps the network and the optimiser state are written as safetensors, and a killed run resumes
from the last checkpoint. The result is a head of kind ``convnext-finetune``, which ``detect``
and ``evaluate`` use like any other.
"""

from __future__ import annotations

import json
import warnings
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
from synthwatch.embeddings.registry import BackboneSpec, resolve_spec
from synthwatch.embeddings.views import augment, perturb, prepare, view_rng
from synthwatch.embeddings.workers import dying_with_this_process
from synthwatch.store.atomic import atomic_write_bytes

FINETUNE_KIND = "convnext-finetune"


@dataclass(frozen=True)
class FinetuneOptions:
    """Backbone (a ConvNeXt registry name), optimisation, checkpoints and device."""

    backbone: str = "convnext-tiny"
    steps: int = 500
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.05
    checkpoint_every: int = 100
    device: str = "auto"
    workers: int = 0
    allow_random_weights: bool = False
    seed: int = 0
    mixed_precision: bool = True  # bf16 autocast on CUDA


@dataclass(frozen=True)
class ImageItem:
    """An image to train on or score: where its bytes are, its label, and the view to take."""

    image_id: str
    path: str
    label: int = 0
    view: int = 0


class ConvNeXtDetector(nn.Module):
    """A ConvNeXt trunk (pooled features) and one logit of "synthetic"."""

    def __init__(self, trunk: nn.Module, width: int, seed: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.classifier = nn.Linear(width, 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.trunk(pixels)).squeeze(1)


def convnext_spec(name: str) -> BackboneSpec:
    spec = resolve_spec(name)
    if spec.family != "convnext":
        raise ValueError(f"Expected a ConvNeXt backbone to fine-tune (convnext-tiny, -small, -base, "
                         f"test-tiny-convnext), but got {name!r}.")
    return spec


def build_network(spec: BackboneSpec, *, pretrained: bool, allow_random_weights: bool = False) -> ConvNeXtDetector:
    """The network to train (pretrained trunk) or to load saved weights into (seeded trunk)."""
    from synthwatch.embeddings.loading import build_architecture, load_model

    trunk = load_model(spec, allow_random_weights=allow_random_weights)[0] if pretrained else build_architecture(spec)
    return ConvNeXtDetector(trunk, spec.widths[-1])


class _Images(Dataset):
    """Decoded, prepared pixels of image items; ``augmented`` draws are seeded per position."""

    def __init__(self, items: Sequence[ImageItem], spec: BackboneSpec, *, augmented: bool, seed: int,
                 offset: int = 0) -> None:
        self.items, self.spec, self.augmented, self.seed, self.offset = items, spec, augmented, seed, offset

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int):
        item = self.items[position]
        image, _ = decode_image(read_image_file(item.path, STORED_IMAGE_LIMITS), STORED_IMAGE_LIMITS)
        if self.augmented:
            rng = view_rng(self.seed, item.image_id, self.offset + position)
            image, _ = augment(image, rng)
            pixels, _ = prepare(image, self.spec, "crop", rng)
        else:
            if item.view:
                image, _ = perturb(image, item.view, view_rng(self.seed, item.image_id, item.view))
            pixels, _ = prepare(image, self.spec, "crop")
        return torch.from_numpy(pixels), torch.tensor(float(item.label))


def balanced_draws(items: Sequence[ImageItem], count: int, seed: int) -> list[ImageItem]:
    """``count`` items alternating real and synthetic, each side drawn uniformly with replacement."""
    sides = [[i for i in items if i.label == label] for label in (0, 1)]
    if not sides[0] or not sides[1]:
        raise ValueError(f"Expected real and synthetic training images, but got {len(sides[0])} real and "
                         f"{len(sides[1])} synthetic.")
    picks = [np.random.default_rng([seed, label]).integers(0, len(side), count) for label, side in enumerate(sides)]
    return [sides[k % 2][picks[k % 2][k]] for k in range(count)]


def train_network(items: Sequence[ImageItem], options: FinetuneOptions, *, checkpoint_dir: Path,
                  progress: Callable[[int, float], None] | None = None) -> tuple[ConvNeXtDetector, BackboneSpec, dict]:
    """Fine-tune on ``items`` for ``options.steps`` steps, resuming from ``checkpoint_dir``."""
    spec = convnext_spec(options.backbone)
    device = resolve_device(options.device)
    network = build_network(spec, pretrained=True, allow_random_weights=options.allow_random_weights).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    start = _resume(checkpoint_dir, network, optimiser, device)
    draws = balanced_draws(items, options.steps * options.batch_size, options.seed)[start * options.batch_size:]
    loader = DataLoader(_Images(draws, spec, augmented=True, seed=options.seed, offset=start * options.batch_size),
                        batch_size=options.batch_size, num_workers=options.workers,
                        pin_memory=device.type == "cuda", worker_init_fn=dying_with_this_process())
    loss_fn = nn.BCEWithLogitsLoss()
    network.train()
    losses = []
    step = start
    for pixels, labels in loader:
        pixels, labels = pixels.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and options.mixed_precision):
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
    return network, spec, {"steps": step, "resumed_from": start, "device": device.type,
                           "final_loss": round(float(np.mean(losses[-10:])), 6) if losses else None}


@torch.inference_mode()
def score_items(network: ConvNeXtDetector, spec: BackboneSpec, items: Sequence[ImageItem], *, seed: int = 0,
                batch_size: int = 64, device: str = "auto") -> np.ndarray:
    """P(synthetic) of each item's view, (n,) float64."""
    target = resolve_device(device)
    network.to(target).eval()
    scores = []
    loader = DataLoader(_Images(items, spec, augmented=False, seed=seed), batch_size=batch_size)
    for pixels, _ in loader:
        with torch.autocast(target.type, dtype=torch.bfloat16, enabled=target.type == "cuda"):
            scores.append(torch.sigmoid(network(pixels.to(target)).float()).cpu().numpy())
    return np.concatenate(scores).astype(np.float64) if scores else np.zeros(0)


@torch.inference_mode()
def score_images(network: ConvNeXtDetector, spec: BackboneSpec, images: Sequence) -> np.ndarray:
    """P(synthetic) of decoded RGB images (clean view, on the network's device), (n,) float64."""
    device = next(network.parameters()).device
    pixels = torch.from_numpy(np.stack([prepare(image, spec, "crop")[0] for image in images])).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return torch.sigmoid(network(pixels).float()).cpu().numpy().astype(np.float64)


def network_bytes(network: ConvNeXtDetector) -> bytes:
    return save_tensors({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()})


def network_from_bytes(spec: BackboneSpec, data: bytes) -> ConvNeXtDetector:
    network = build_network(spec, pretrained=False)
    network.load_state_dict(load_tensors(data))
    return network.eval()


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
        warnings.warn(f"the checkpoint in {folder} is damaged ({error}); fine-tuning starts again from step 0")
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
