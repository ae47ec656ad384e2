"""sola-search: where should a mostly-linear vision backbone spend its few softmax-attention layers?

Importing the package registers the backbone with timm (`sola_vision_<variant>`) when timm is
installed: at once if timm is loaded, else the moment it is. torch and timm themselves load only
when something needs them, so that the light commands start at once."""

import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

from sola_search.errors import SolaError  # noqa: E402
from sola_search.space.budget import Budget  # noqa: E402
from sola_search.space.cost import model_cost  # noqa: E402
from sola_search.space.pattern import Pattern  # noqa: E402

__all__ = ["Budget", "Pattern", "SolaError", "__version__", "build_backbone", "load_backbone", "model_cost"]


def __getattr__(name: str):
    if name == "build_backbone":
        from sola_search.space.backbone import build_backbone

        return build_backbone
    if name == "load_backbone":
        from sola_search.results.export import load_backbone

        return load_backbone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_backbone() -> None:
    try:
        from sola_search.space import backbone

        backbone._register_with_timm()  # once; the module may have been imported before timm was
    except Exception as e:  # noqa: BLE001 — never break the user's `import timm`
        warnings.warn(f"sola-search: could not register its models with timm: {e}", stacklevel=2)


class _RegisterAfterTimm(importlib.abc.MetaPathFinder):
    """Wraps timm's own loader: once timm has loaded, the backbone registers with it."""

    def find_spec(self, name, path, target=None):
        if name != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                _register_backbone()

            spec.loader.exec_module = exec_module
        return spec


if "timm" in sys.modules:
    _register_backbone()
elif not any(isinstance(f, _RegisterAfterTimm) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTimm())
