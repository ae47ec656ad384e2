"""sola-search: where should a mostly-linear vision backbone spend its few softmax-attention layers?

Importing the package registers the backbone with timm (`sola_vision_<variant>`) when timm is installed."""

__version__ = "0.1.0"

from sola_search.errors import SolaError  # noqa: E402
from sola_search.results.export import load_backbone  # noqa: E402
from sola_search.space import Budget, Pattern, build_backbone, model_cost  # noqa: E402

__all__ = ["Budget", "Pattern", "SolaError", "__version__", "build_backbone", "load_backbone", "model_cost"]
