"""Limits of the HTTP service, importable without loading the service itself."""

# An upload decodes to about 4 bytes a pixel (more for 16-bit images on the way to 8 bits): 40 M
# pixels keep one decode near 160-500 MB, and the service decodes only a few at once.
SERVICE_MAX_PIXELS = 40_000_000
