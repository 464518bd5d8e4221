"""Decoding untrusted bytes: every mode comes out upright 8-bit RGB, bad bytes get a reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from synthwatch.embeddings.decode import DecodeLimits, ImageRejected, decode_image
from tests.conftest import image_bytes


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "mode, fmt",
    [("RGB", "JPEG"), ("CMYK", "JPEG"), ("L", "PNG"), ("P", "PNG"), ("RGBA", "PNG"),
     ("LA", "PNG"), ("1", "PNG"), ("I;16", "PNG"), ("RGB", "WEBP"), ("RGB", "BMP"),
     ("RGB", "TIFF"), ("P", "GIF")],
)
def test_every_mode_decodes_to_rgb(mode, fmt):
    data = image_bytes(size=(40, 36), mode=mode, fmt=fmt)
    image, info = decode_image(data)
    assert image.mode == "RGB"
    assert (info.width, info.height) == (40, 36) == image.size
    assert info.format == fmt
    assert np.asarray(image).dtype == np.uint8


def test_sixteen_bit_keeps_its_range():
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    image, info = decode_image(_encode(Image.fromarray(ramp), "PNG"))
    pixels = np.asarray(image)[..., 0]
    assert info.mode.startswith("I")
    assert pixels.min() == 0 and pixels.max() == 255


def test_alpha_is_composited_over_white():
    transparent = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    image, _ = decode_image(_encode(transparent, "PNG"))
    assert np.asarray(image)[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (80, 40), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image, info = decode_image(_encode(wide, "JPEG", exif=exif))
    assert (info.width, info.height) == (40, 80) == image.size


def test_animated_gif_takes_first_frame():
    frames = [Image.new("RGB", (40, 40), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    image, info = decode_image(data)
    assert info.frames == 2
    red, green, blue = np.asarray(image)[20, 20]
    assert red > 200 and blue < 50


def test_format_is_decided_by_content_not_name():
    _, info = decode_image(image_bytes(fmt="PNG"))
    assert info.format == "PNG"
    _, info = decode_image(image_bytes(fmt="JPEG"))
    assert info.format == "JPEG"


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG claiming ``width`` x ``height`` pixels (a decompression-bomb shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    "data, limits, reason",
    [
        (b"", DecodeLimits(), r"^empty file"),
        (b"hello, not an image\n", DecodeLimits(), r"^not an image"),
        (image_bytes(fmt="PNG")[:300], DecodeLimits(), r"^truncated or corrupt"),
        (image_bytes(fmt="JPEG", size=(64, 64))[:400], DecodeLimits(), r"^truncated or corrupt"),
        (_png_header_only(60_000, 60_000), DecodeLimits(), r"^decompression bomb"),
        (_png_header_only(5_000, 5_000), DecodeLimits(max_pixels=1_000_000),
         r"^decompression bomb: 5000 x 5000 = 25,000,000 pixels, over the limit of 1,000,000"),
        (image_bytes(size=(100, 20)), DecodeLimits(), r"^too small: 100 x 20 px.*at least 32 px"),
        (image_bytes(size=(100, 20)), DecodeLimits(min_side=20), None),
    ],
    ids=["empty", "text", "truncated-png", "truncated-jpeg", "bomb-pillow", "bomb-limit",
         "too-small", "small-allowed"],
)
def test_rejections_carry_a_one_line_reason(data, limits, reason):
    if reason is None:
        decode_image(data, limits)
        return
    with pytest.raises(ImageRejected, match=reason) as caught:
        decode_image(data, limits)
    assert "\n" not in caught.value.reason


def test_limits_must_be_positive():
    for bad in ({"min_side": 0}, {"max_pixels": 0}, {"max_bytes": 0}):
        with pytest.raises(ValueError, match="Expected max_pixels, min_side and max_bytes >= 1"):
            DecodeLimits(**bad)


# Hostile files (issue: hostile inputs): whatever Pillow raises becomes a rejection with a reason.

def test_a_broken_later_frame_is_a_rejection_not_a_crash():
    from tests.hostile_images import tiff_with_a_broken_second_frame

    with pytest.raises(ImageRejected, match=r"truncated or corrupt image data \(Pillow: Missing dimensions\)"):
        decode_image(tiff_with_a_broken_second_frame())


def test_garbage_layer_records_are_a_rejection_not_a_crash():
    from tests.hostile_images import psd_with_garbage_layers

    pixels = np.random.default_rng(1).integers(0, 256, (36, 40, 3), dtype=np.uint8)
    with pytest.raises(ImageRejected, match=r"truncated or corrupt image data \(Pillow: Layer block too short"):
        decode_image(psd_with_garbage_layers(pixels))


@pytest.mark.parametrize("layered", [False, True])
def test_photoshop_files_decode_to_their_composite(layered):
    from tests.hostile_images import psd, psd_with_one_layer

    pixels = np.random.default_rng(2).integers(0, 256, (36, 40, 3), dtype=np.uint8)
    image, info = decode_image(psd_with_one_layer(pixels) if layered else psd(pixels))
    assert info.format == "PSD" and (info.width, info.height) == (40, 36)
    assert np.array_equal(np.asarray(image), pixels)


def test_a_pixel_limit_above_pillows_own_cap_is_honoured():
    huge = _png_header_only(20_000, 10_000)  # 200 M pixels: over Pillow's cap of 2 x 89 M
    with pytest.raises(ImageRejected, match="decompression bomb"):
        decode_image(huge)
    with pytest.raises(ImageRejected) as accepted_size:
        decode_image(huge, DecodeLimits(max_pixels=300_000_000))
    assert "truncated or corrupt" in accepted_size.value.reason  # past the size check: no pixels follow
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's cap is left as it was


def test_pillows_bomb_warning_is_not_switched_off_for_the_whole_process():
    import subprocess
    import sys

    code = ("import warnings; from PIL import Image; import synthwatch.embeddings.decode; "
            "print([f[0] for f in warnings.filters if f[2] is Image.DecompressionBombWarning])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ignore" not in done.stdout  # a fresh process: pytest's own warning handling is not in play


def _heic(size=(64, 48), colour=(10, 200, 30)) -> bytes:
    import pillow_heif  # noqa: F401 - registered by synthwatch.embeddings.decode

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="HEIF")
    return buffer.getvalue()


def test_heic_phone_photos_decode():
    image, info = decode_image(_heic())
    assert (info.format, info.width, info.height, image.mode) == ("HEIF", 64, 48, "RGB")
    assert abs(int(np.asarray(image)[10, 10, 1]) - 200) <= 3  # lossy, but the colour holds


def test_heic_without_its_plugin_is_refused_saying_what_to_install():
    import subprocess
    import sys

    code = ("import sys; sys.modules['pillow_heif'] = None\n"
            "from synthwatch.embeddings.decode import ImageRejected, decode_image\n"
            "try:\n    decode_image(sys.stdin.buffer.read())\nexcept ImageRejected as error:\n    print(error.reason)")
    done = subprocess.run([sys.executable, "-c", code], input=_heic(), capture_output=True, check=True)
    assert b"HEIC/HEIF image" in done.stdout and b"install pillow-heif" in done.stdout


def test_a_heic_file_with_an_upper_case_name_is_ingested(cli, store, tmp_path):
    photo = tmp_path / "phone" / "IMG_0001.HEIC"
    photo.parent.mkdir()
    photo.write_bytes(_heic())
    code, out, err = cli("--store", store, "ingest", photo.parent, "--label", "real", "--json")
    assert code == 0 and out["ingested"] == 1 and out["rejected"] == 0, err
