"""``pycro-gpu backend``: which compute backend would run and why."""

from __future__ import annotations

import argparse

HELP = "show which compute backend would run and why"


def add_arguments(p: argparse.ArgumentParser) -> None:
    return None


def run(args: argparse.Namespace) -> int:
    from .._config import get_config
    from ..backend import cupy_status, get_namespace, namespace_name, resolve_backend

    cfg = get_config()
    usable, reason = cupy_status()
    print(f"requested backend : {cfg['backend']}")
    print(f"cupy usable       : {'yes' if usable else 'no (' + reason + ')'}")
    print(f"active backend    : {resolve_backend()} ({namespace_name(get_namespace())})")
    print(f"memory budget     : {cfg['memory_mb']:g} MiB")
    return 0
