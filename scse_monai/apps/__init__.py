"""Applications built on scse_monai: CHAOS data tooling, evaluation and experiments."""

from __future__ import annotations

__all__: list[str] = []
