"""CHAOS (ISBI 2019) data tooling: discovery, DICOM + PNG reading, label mapping, conversion, synthetic phantom.

Kavur et al., "CHAOS Challenge - combined (CT-MR) healthy abdominal organ segmentation", Medical Image Analysis 69
(2021) 101950, https://arxiv.org/abs/2001.06535. Submodules are imported on demand (``from scse_monai.apps.chaos
import io``) so that importing the package stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
