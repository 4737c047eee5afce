"""Memory bounds of inference: peak memory is set by the slice batch, not by the volume's depth.

The bundle segments a volume slice by slice (``SliceInferer`` with the bundle's ``sw_batch_size``), so network
activations exist for one batch of slices at a time; only the input and the output probability volume (and MONAI's
accumulation buffers beside it) grow with depth. Each depth is measured in a fresh process (``memory_probe.py``:
``/proc/self/clear_refs`` then ``VmHWM``) with the bundle's full network. CI uses a 64 x 64 in-plane size so the CPU
run takes seconds; the activations per slice scale with the in-plane area, the depth argument does not depend on it.
A realistic run (``python tests/reliability/memory_probe.py 300 256``: the bundle resamples 512 x 512 CT at
0.7 mm to about 256 x 256 at 1.5 mm) is reported in the issue's closing note.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .reliability_data import STATS

PROBE = Path(__file__).with_name("memory_probe.py")
SIZE, SHALLOW, DEEP = 64, 40, 160
# glibc moves its mmap threshold up after large frees, so freed activations get reused from the heap or not, and the
# peak RSS jitters by several MiB; a fixed threshold returns large blocks to the system at once (stable to ~0.2 MiB).
PROBE_ENV = {"OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _probe(depth: int) -> dict:
    out = subprocess.run([sys.executable, str(PROBE), str(depth), str(SIZE)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, **PROBE_ENV})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak")
def test_peak_memory_is_flat_in_depth() -> None:
    shallow, deep = _probe(SHALLOW), _probe(DEEP)
    # What must scale with depth: the output probability volume (num_classes x H x W x D float32).
    rest_shallow = shallow["added_peak_bytes"] - shallow["output_bytes"]
    rest_deep = deep["added_peak_bytes"] - deep["output_bytes"]
    for d in (shallow, deep):
        STATS[f"peak memory added by inference, {SIZE}x{SIZE}x{d['depth']} (MiB)"] = round(
            d["added_peak_bytes"] / 2**20, 1)
    STATS[f"remainder after the output volume, depth {SHALLOW} -> {DEEP} (MiB)"] = (
        f"{rest_shallow / 2**20:.1f} -> {rest_deep / 2**20:.1f}")
    assert rest_shallow > 0
    # Depth x4: without the output volume the peak grows by less than 25 %. If activations were kept for the whole
    # volume the remainder would grow about 4x.
    assert rest_deep < 1.25 * rest_shallow, (shallow, deep)
    # And the growth is (about) the output volume's growth, not a multiple of it.
    growth = deep["added_peak_bytes"] - shallow["added_peak_bytes"]
    assert growth < 1.5 * (deep["output_bytes"] - shallow["output_bytes"]), (shallow, deep)
