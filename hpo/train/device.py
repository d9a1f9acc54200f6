"""The device a study trains on, from ``training.accelerator`` (torch only: no Lightning needed to check it)."""

from __future__ import annotations

import torch

from hpo.errors import ConfigError

__all__ = ["training_device"]


def training_device(accelerator: str, where: str = "training.accelerator") -> torch.device:
    """The device Lightning trains on for ``training.accelerator`` (``auto``: CUDA, else Apple MPS, else the CPU).

    Raises:
        ConfigError: a GPU is asked for by name and this machine's torch sees none.
    """
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if accelerator == "cuda" or (accelerator in ("gpu", "auto") and cuda):
        device = "cuda" if cuda else None
    elif accelerator == "mps" or (accelerator in ("gpu", "auto") and mps):
        device = "mps" if mps else None
    elif accelerator == "gpu":
        device = None
    else:
        device = "cpu"
    if device is None:
        raise ConfigError(
            f"{where}: {accelerator!r} asks for a GPU, but torch {torch.__version__} sees none on this machine; "
            "use `accelerator: auto` (the GPU when there is one, else the CPU) or `cpu`, or install a torch build "
            "for your GPU"
        )
    return torch.device(device)
