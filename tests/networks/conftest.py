"""Fixtures for network tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from monai.networks.layers.factories import LayerFactory

from scse_monai.networks.layers import SE


@pytest.fixture
def se_registry() -> Iterator[LayerFactory]:
    """The process-wide SE factory, restored after the test: registrations made in the test do not leak."""
    components, doc = dict(SE.components), SE.__doc__
    try:
        yield SE
    finally:
        SE.components.clear()
        SE.components.update(components)
        SE.__doc__ = doc
