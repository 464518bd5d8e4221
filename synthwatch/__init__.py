"""synthwatch: train, monitor and keep current your own detector of AI-generated images."""

__version__ = "0.1.0"
