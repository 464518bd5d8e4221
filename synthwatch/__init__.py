"""synthwatch: train, monitor and keep current your own detector of AI-generated images.

``from synthwatch import Store`` is the Python API (see :mod:`synthwatch.api`); the libraries log
under the ``synthwatch`` logger."""

__version__ = "0.1.0"
__all__ = ["Store", "__version__"]


def __getattr__(name: str):
    if name == "Store":  # imported on first use: `import synthwatch` stays light
        from synthwatch.api import Store

        return Store
    raise AttributeError(f"module 'synthwatch' has no attribute {name!r}")
