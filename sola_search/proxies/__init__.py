"""How good a pattern is, cheaply: proxy datasets, the short proxy training run and its presets.

Knows nothing of Optuna or Ray: `train_proxy(pattern, config) -> ProxyResult` is the whole contract
(`train_proxies` trains a pack of patterns together, one result each)."""

from sola_search.proxies.config import PRESETS, ProxyConfig, get_preset, seed_list
from sola_search.proxies.data import (
    ProxyData,
    augment_batch,
    check_data,
    check_fit,
    clear_cache,
    load_data,
    load_proxy_data,
    resolve_device,
    training_advice,
)
from sola_search.proxies.train import STATUSES, ProxyResult, lr_at, train_proxies, train_proxy, warm_up

__all__ = [
    "PRESETS", "STATUSES", "ProxyConfig", "ProxyData", "ProxyResult", "augment_batch", "check_data", "check_fit",
    "clear_cache", "get_preset", "load_data", "load_proxy_data", "lr_at", "resolve_device", "seed_list",
    "train_proxies", "train_proxy", "training_advice", "warm_up",
]
