"""Safe, complete decoding of untrusted image bytes into an upright RGB picture.

Every image synthwatch touches goes through :func:`decode_image`: the pixel limit is checked
from the header before any pixel is decoded, the whole first frame is then decoded (so
truncated data is caught here, not later), EXIF orientation is applied, and every mode
(CMYK, 16-bit, palette, alpha, greyscale, bilevel) is brought to 8-bit RGB. Whatever Pillow
raises on hostile bytes, of any exception type, becomes an :class:`ImageRejected` with a reason.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC / HEIF (phone photos): Pillow reads them through the pillow-heif plugin
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORT = True
except ImportError:  # a machine without it (the bare GPU machines) refuses them, saying why
    HEIF_SUPPORT = False
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1")

# Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS at open. A user limit above that is
# honoured by opening again with Pillow's cap raised to it, one thread at a time; our own limit
# is checked from the header right after, before any pixel is decoded.
_RAISED_CAP = threading.Lock()

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MIN_SIDE = 32
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # no camera or generator writes image files this large


@dataclass(frozen=True)
class DecodeLimits:
    """What an acceptable image may be: at most ``max_pixels``, shorter side >= ``min_side``, and
    a file of at most ``max_bytes`` (checked before it is read)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.min_side < 1 or self.max_bytes < 1:
            raise ValueError(
                f"Expected max_pixels, min_side and max_bytes >= 1, but got max_pixels = "
                f"{self.max_pixels}, min_side = {self.min_side}, max_bytes = {self.max_bytes}. "
                "Pass positive limits."
            )

    def too_large(self, size: int) -> str | None:
        """The rejection reason for a file of ``size`` bytes, or None if it may be read."""
        if size > self.max_bytes:
            return f"too large: {size:,} bytes, at most {self.max_bytes:,} are read"
        return None


# Images already in the store were validated at ingest: when embedding or fine-tuning on them,
# only damage or a changed original should fail, not a limit the user may have raised then.
STORED_IMAGE_LIMITS = DecodeLimits(max_pixels=1_000_000_000, min_side=1, max_bytes=2**34)


@dataclass(frozen=True)
class ImageInfo:
    """Facts about a decoded image: size after orientation, container format, original mode."""

    width: int
    height: int
    format: str
    mode: str
    frames: int


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; ``reason`` is one line a user can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_image_file(path: str | Path, limits: DecodeLimits = DecodeLimits()) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limits.max_bytes`` of them.

    A FIFO, socket or device (also behind a symlink) is refused without waiting on it: the file
    is opened non-blocking and checked with ``fstat`` before anything is read; the read stops one
    byte past the limit, so a file that grows or lies about its size cannot exhaust memory.
    Raises ``ImageRejected`` with the reason, or ``OSError`` (not found, no permission).
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ImageRejected(f"not a regular file ({_file_kind(info.st_mode)}): only files are read")
        if limits.too_large(info.st_size):
            raise ImageRejected(limits.too_large(info.st_size))
        data = handle.read(limits.max_bytes + 1)
    if limits.too_large(len(data)):
        raise ImageRejected(f"too large: over {limits.max_bytes:,} bytes (it grew while being read)")
    return data


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISDIR: "a folder"}
    return next((name for test, name in kinds.items() if test(mode)), "not a file")


def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits()) -> tuple[Image.Image, ImageInfo]:
    """Decode ``data`` fully into an upright 8-bit RGB image.

    Parameters
    ----------
    data : bytes
        The file's content. The format is decided by content, never by a file name.
    limits : DecodeLimits
        Pixel limit (checked before decoding) and minimum side (checked after orientation).

    Returns
    -------
    image : PIL.Image.Image
        Mode ``RGB``, shape (height, width, 3) once converted to an array.
    info : ImageInfo

    Raises
    ------
    ImageRejected
        Empty, not an image, truncated or corrupt, over the pixel limit, or too small.
    """
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    if limits.too_large(len(data)):
        raise ImageRejected(limits.too_large(len(data)))
    image = _open(data, limits)
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"decompression bomb: {width} x {height} = {width * height:,} pixels, over the "
            f"limit of {limits.max_pixels:,} (raise --max-pixels to accept it)"
        )
    try:
        image_format = image.format or "unknown"
        mode = image.mode
        frames = int(getattr(image, "n_frames", 1) or 1)  # counting frames parses them all
        image.load()  # the first frame (for PSD the composite): Pillow opens every format there
        ImageOps.exif_transpose(image, in_place=True)
        rgb = _to_rgb(image)
    except Image.DecompressionBombError as error:
        raise ImageRejected(f"decompression bomb: {error}") from None
    except MemoryError:
        raise ImageRejected("too large to decode in memory") from None
    except Exception as error:  # noqa: BLE001 - any parser failure is a rejection, not a crash
        raise ImageRejected(f"truncated or corrupt image data ({_describe(error)})") from None
    if min(rgb.size) < limits.min_side:
        raise ImageRejected(
            f"too small: {rgb.width} x {rgb.height} px, the shorter side must be at least "
            f"{limits.min_side} px (lower --min-side to accept it)"
        )
    return rgb, ImageInfo(rgb.width, rgb.height, image_format, mode, frames)


def _open(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Pillow's lazy open (header only), any failure a rejection."""
    try:
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            if limits.max_pixels <= 2 * (Image.MAX_IMAGE_PIXELS or 0):
                raise
        with _RAISED_CAP:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limits.max_pixels
            try:
                return Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not HEIF_SUPPORT:
            raise ImageRejected("a HEIC/HEIF image, which this machine cannot read: install pillow-heif") from None
        raise ImageRejected("not an image: the content is no image format Pillow can read") from None
    except Image.DecompressionBombError as error:
        raise ImageRejected(f"decompression bomb: {error}") from None
    except Exception as error:  # noqa: BLE001 - any parser failure is a rejection, not a crash
        raise ImageRejected(f"truncated or corrupt image data ({_describe(error)})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Bring any Pillow mode to 8-bit RGB; transparency is composited over white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale 16-bit, 32-bit integer or float pixels to 0..255."""
    pixels = pixels.astype(np.float64)
    if pixels.size and pixels.max() <= 1.0 and pixels.min() >= 0.0:
        scaled = pixels * 255.0
    elif pixels.size and pixels.max() > 255.0:
        scaled = pixels / 257.0 if pixels.max() <= 65535.0 else pixels * (255.0 / pixels.max())
    else:
        scaled = pixels
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _describe(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"Pillow: {text}"
