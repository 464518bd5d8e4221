"""Hostile and unusual image files, generated here (never copied from elsewhere): the shapes of
Pillow's own fuzzer crash cases, reproduced minimally."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image


def tiff_with_a_broken_second_frame() -> bytes:
    """A two-page TIFF whose second page lost its dimensions: the first page opens, counting the
    pages raises ``TypeError: Missing dimensions`` (the shape of crash-2020-10-test.tif)."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), "red").save(buffer, "TIFF", save_all=True,
                                           append_images=[Image.new("RGB", (40, 40), "blue")])
    data = bytearray(buffer.getvalue())
    first = struct.unpack("<I", data[4:8])[0]
    entries = struct.unpack("<H", data[first:first + 2])[0]
    second = struct.unpack("<I", data[first + 2 + 12 * entries:first + 6 + 12 * entries])[0]
    for index in range(struct.unpack("<H", data[second:second + 2])[0]):
        at = second + 2 + 12 * index
        if struct.unpack("<H", data[at:at + 2])[0] in (256, 257):  # ImageWidth, ImageLength
            data[at:at + 2] = struct.pack("<H", 65000 + index)  # an unknown tag instead
    return bytes(data)


def psd(pixels: np.ndarray, layer_section: bytes = b"") -> bytes:
    """A Photoshop file: (H, W, 3) uint8 composite, raw, with ``layer_section`` as its layer and
    mask information (empty: no layers)."""
    height, width, channels = pixels.shape
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, channels, height, width, 8, 3)
    planes = pixels.transpose(2, 0, 1).tobytes()
    return (header + struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(">I", len(layer_section))
            + layer_section + struct.pack(">H", 0) + planes)


def psd_with_one_layer(pixels: np.ndarray) -> bytes:
    """A layered Photoshop file (one raw RGB layer the size of the image), as Photoshop writes
    them; Pillow decodes its composite."""
    height, width, _ = pixels.shape
    channel_bytes = 2 + height * width  # compression + raw plane
    record = struct.pack(">iiiiH", 0, 0, height, width, 3)
    record += b"".join(struct.pack(">hI", channel, channel_bytes) for channel in (0, 1, 2))
    record += b"8BIMnorm" + struct.pack(">BBBB", 255, 0, 0, 0)
    extra = struct.pack(">I", 0) + struct.pack(">I", 0) + b"\x05layer\x00\x00"  # mask, blending, name (padded to 4)
    record += struct.pack(">I", len(extra)) + extra
    data = b"".join(struct.pack(">H", 0) + pixels[..., c].tobytes() for c in range(3))
    layer_info = struct.pack(">h", 1) + record + data
    if len(layer_info) % 2:
        layer_info += b"\x00"
    return psd(pixels, struct.pack(">I", len(layer_info)) + layer_info)


def psd_with_garbage_layers(pixels: np.ndarray) -> bytes:
    """A Photoshop file whose layer records are garbage: counting its layers raises inside
    Pillow (the shape of the timeout-*.psd and psd-oob-write cases)."""
    garbage = struct.pack(">h", 3) + b"\xff" * 40
    return psd(pixels, struct.pack(">I", len(garbage)) + garbage)
