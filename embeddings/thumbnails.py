"""Small JPEG previews of images, decoded with the safe decoder and only ever made smaller."""

from __future__ import annotations

import io

from PIL import Image

from synthwatch.embeddings.decode import DecodeLimits, decode_image

MAX_THUMBNAIL_SIDE = 256


def thumbnail(data: bytes, side: int, limits: DecodeLimits) -> bytes:
    """JPEG bytes of the image in ``data`` fitted within ``side`` x ``side`` pixels, aspect kept.

    Parameters
    ----------
    data : bytes
        An image file's content, decoded by :func:`~synthwatch.embeddings.decode.decode_image`.
    side : int
        The longer side of the preview, 1 to ``MAX_THUMBNAIL_SIDE``; smaller images keep their size.
    limits : DecodeLimits
        What the decoder accepts.

    Raises
    ------
    ValueError
        ``side`` out of range.
    ImageRejected
        ``data`` is no acceptable image.
    """
    if not 1 <= side <= MAX_THUMBNAIL_SIDE:
        raise ValueError(f"Expected a thumbnail side of 1 to {MAX_THUMBNAIL_SIDE} px, but got {side}. "
                         "Ask for a smaller size.")
    image, _ = decode_image(data, limits)
    image.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
