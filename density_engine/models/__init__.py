"""Model registry: names → model declaration classes (torch-free), imported lazily so that a model module that fails
to import only breaks its own name. Each declaration names its torch step kernel (``Model.kernel``), which only the
engine imports.

>>> from density_engine.models import get_model_class, model_names
>>> M = get_model_class("gjrgarch_normalized")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from density_engine.models.base import Model

MODEL_REGISTRY: dict[str, str] = {
    "gjrgarch_normalized": "density_engine.models.gjrgarch:GJRGarchNormalized",
    "rough_heston": "density_engine.models.rough_heston:RoughHeston",
    "rough_bergomi": "density_engine.models.rough_bergomi:RoughBergomi",
}


class UnknownModelError(KeyError):
    """A model name that is not in the registry (a ``KeyError`` with a readable message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model"


def model_names() -> list[str]:
    """Registered model names, in registry order."""
    return list(MODEL_REGISTRY)


def get_model_class(name: str) -> type[Model]:
    """The model class registered as ``name``; ``KeyError`` naming the known models if there is none."""
    try:
        target = MODEL_REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {model_names()}") from None
    module_name, class_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


__all__ = ["MODEL_REGISTRY", "UnknownModelError", "get_model_class", "model_names"]
