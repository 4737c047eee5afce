"""Synthetic abdominal anatomy for the CHAOS phantom: tissue classes and organ labels on a voxel grid.

The anatomy is defined in continuous patient space (DICOM LPS, mm: +x patient left, +y posterior, +z superior), so
one seed gives the same abdomen at any matrix size; only the sampling changes. Organs are deformed superellipsoids:
a point is inside when its normalised radius is below ``1 + amplitude * field``, where ``field`` is a smooth random
field built from a few random plane waves. Plane waves (rather than a Gaussian-filtered noise volume) are used because
they can be evaluated at any physical point, which keeps the anatomy independent of the grid.

Layout, as in a supine abdomen seen in axial slices: liver on the patient's right (small column index with
ImageOrientationPatient (1,0,0,0,1,0)), spleen posterolateral left, kidneys posterior on either side of the spine
(right kidney lower), spine posterior midline, aorta and IVC in front of it, stomach anterior left, body outline with
subcutaneous fat, abdominal wall muscle, bowel with gas, ribs in the upper slices. Organs cover only part of the
z range, so some slices hold no organ.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from scse_monai.apps.chaos.labels import LABELS

__all__ = ["Tissue", "Anatomy", "SmoothField", "make_anatomy"]


class Tissue(IntEnum):
    """Tissue classes; the phantom maps each to a CT HU or an MR signal."""

    AIR = 0
    FAT = 1
    SOFT = 2  # visceral soft tissue / bowel content
    MUSCLE = 3
    LIVER = 4
    LIVER_VESSEL = 5
    SPLEEN = 6
    KIDNEY_CORTEX = 7
    KIDNEY_MEDULLA = 8
    ARTERY = 9
    VEIN = 10
    BONE = 11
    MARROW = 12
    CSF = 13
    GAS = 14
    DISC = 15


class SmoothField:
    """Smooth random field of roughly unit variance: a sum of random plane waves in physical space (mm).

    Args:
        rng: random generator.
        wavelengths: (min, max) wavelength in mm.
        waves: number of plane waves.
    """

    def __init__(self, rng: np.random.Generator, wavelengths: tuple[float, float] = (60.0, 160.0), waves: int = 6):
        directions = rng.normal(size=(waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        lengths = rng.uniform(*wavelengths, size=waves)
        self.k = directions * (2 * np.pi / lengths)[:, None]
        self.phase = rng.uniform(0, 2 * np.pi, size=waves)
        self.scale = np.sqrt(2.0 / waves)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Evaluate on broadcastable coordinate arrays."""
        out = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), dtype=np.float32)
        for (kx, ky, kz), ph in zip(self.k, self.phase, strict=True):
            out += np.cos(kx * x + ky * y + kz * z + ph).astype(np.float32)
        return out * np.float32(self.scale)


@dataclass
class Anatomy:
    """A sampled phantom abdomen.

    Attributes:
        tissue: ``uint8`` :class:`Tissue` per voxel, shape (x, y, z) = (columns, rows, slices).
        labels: ``uint8`` CHAOS labels (1 liver, 2 right kidney, 3 left kidney, 4 spleen), same shape.
        texture: ``float32`` smooth field (~unit variance) for organ heterogeneity, same shape.
    """

    tissue: np.ndarray
    labels: np.ndarray
    texture: np.ndarray


def _rotate(u: np.ndarray, v: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(angle), np.sin(angle)
    return c * u + s * v, -s * u + c * v


def _radius(x, y, z, center, semi, exponent=2.0, angle=0.0) -> np.ndarray:
    """Normalised superellipsoid radius (< 1 inside), in-plane rotated by ``angle`` (radians)."""
    u, v = _rotate(x - center[0], y - center[1], angle)
    w = z - center[2]
    return (np.abs(u / semi[0]) ** exponent + np.abs(v / semi[1]) ** exponent + np.abs(w / semi[2]) ** exponent) ** (
        1.0 / exponent
    )


def make_anatomy(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, center: tuple[float, float, float]
) -> Anatomy:
    """Sample one random abdomen on the axis-aligned grid ``xs`` x ``ys`` x ``zs`` (LPS mm of voxel centres).

    Args:
        rng: random generator; it fully determines the anatomy (shape, size, position variation).
        xs: x (patient left) coordinates of the columns.
        ys: y (posterior) coordinates of the rows.
        zs: z (superior) coordinates of the slices, in file order.
        center: (x, y, z) of the body centre; organ positions are relative to it.
    """
    # Parameters are drawn first and in a fixed order, so the anatomy of one seed does not depend on the grid.
    s = rng.uniform(0.88, 1.12)  # overall organ scale
    half_w, half_d = rng.uniform(140, 165), rng.uniform(100, 120)  # body half width (x) and depth (y)
    fat_t = rng.uniform(8, 25)
    dz = rng.uniform(-10, 10)
    body_field, organ_fields = SmoothField(rng, (150, 300)), [SmoothField(rng) for _ in range(5)]
    visceral, texture_field = SmoothField(rng, (25, 60), 8), SmoothField(rng, (15, 40), 8)
    liver_c = (-60 * s + rng.uniform(-8, 8), -5 + rng.uniform(-8, 8), 15 + dz)
    liver_semi = np.array([72, 66, 60]) * s * rng.uniform(0.92, 1.08, 3)
    lobe_semi = np.array([55, 30, 40]) * s * rng.uniform(0.8, 1.2, 3)
    spleen_c = (92 * s + rng.uniform(-6, 6), 40 + rng.uniform(-8, 8), 30 + dz + rng.uniform(-10, 10))
    spleen_semi = np.array([28, 55, 42]) * s * rng.uniform(0.8, 1.2, 3)
    spleen_angle = np.deg2rad(rng.uniform(-45, -25))
    kidney_z = (-40 + dz + rng.uniform(-8, 8), -28 + dz + rng.uniform(-8, 8))  # right lower than left
    kidney_semi = [np.array([26, 30, 52]) * s * rng.uniform(0.88, 1.12, 3) for _ in range(2)]
    vessel_dirs = rng.normal(size=(4, 3))
    stomach_semi = np.array([45, 30, 40]) * rng.uniform(0.7, 1.2, 3)

    cx, cy, cz = center
    x = (np.asarray(xs, np.float32) - cx)[:, None, None]
    y = (np.asarray(ys, np.float32) - cy)[None, :, None]
    z = (np.asarray(zs, np.float32) - cz)[None, None, :]
    shape = (x.shape[0], y.shape[1], z.shape[2])
    tissue = np.zeros(shape, dtype=np.uint8)
    labels = np.zeros(shape, dtype=np.uint8)

    def paint(mask: np.ndarray, t: Tissue, label: int = 0) -> None:
        mask = np.broadcast_to(mask, shape)
        tissue[mask] = t
        labels[mask] = label

    taper = 1 + 0.04 * z / 100.0
    body_r = _radius(x, y, 0 * z, (0, 0, 0), (half_w * taper, half_d * taper, 1), 2.4) - 0.03 * body_field(x, y, z)
    paint(body_r < 1, Tissue.FAT)
    wall_r = _radius(x, y, 0 * z, (0, 0, 0), ((half_w - fat_t) * taper, (half_d - fat_t) * taper, 1), 2.4)
    paint(wall_r < 1, Tissue.MUSCLE)
    cavity_r = _radius(x, y, 0 * z, (0, 0, 0), ((half_w - fat_t - 9) * taper, (half_d - fat_t - 9) * taper, 1), 2.4)
    cavity = cavity_r < 1
    vis = visceral(x, y, z)
    paint(cavity & (vis > -0.2), Tissue.SOFT)
    paint(cavity & (vis <= -0.2), Tissue.FAT)
    paint(cavity & (vis > 1.1) & (y < 0) & (z < 20), Tissue.GAS)  # bowel gas, anterior lower abdomen

    stomach_c = (45, -45, 40 + dz)
    stomach_r = _radius(x, y, z, stomach_c, stomach_semi)
    paint(cavity & (stomach_r < 1), Tissue.SOFT)
    paint(cavity & (stomach_r < 0.85) & (y < stomach_c[1] - 5), Tissue.GAS)

    # Liver: right lobe narrowing inferiorly, plus a left lobe crossing the midline anteriorly.
    narrowing = np.clip(0.75 + 0.25 * (z - liver_c[2]) / liver_semi[2], 0.5, 1.1)
    liver_r = np.minimum(
        _radius(x / narrowing, y, z, (liver_c[0] / narrowing, liver_c[1], liver_c[2]), liver_semi, 2.2),
        _radius(x, y, z, (liver_c[0] + 75 * s, liver_c[1] - 45, liver_c[2] + 20), lobe_semi),
    )
    liver = cavity & (liver_r < 1 + 0.1 * organ_fields[0](x, y, z))
    paint(liver, Tissue.LIVER, LABELS["liver"])
    hilum = np.array([liver_c[0] + 25, liver_c[1] + 20, liver_c[2] - 10], dtype=np.float32)
    for d in vessel_dirs:  # portal / hepatic vein branches inside the liver
        d = d / np.linalg.norm(d)
        t = np.clip((x - hilum[0]) * d[0] + (y - hilum[1]) * d[1] + (z - hilum[2]) * d[2], 0, 70 * s)
        dist2 = (x - hilum[0] - t * d[0]) ** 2 + (y - hilum[1] - t * d[1]) ** 2 + (z - hilum[2] - t * d[2]) ** 2
        paint(liver & (dist2 < 3.5**2), Tissue.LIVER_VESSEL, LABELS["liver"])

    spleen_r = _radius(x, y, z, spleen_c, spleen_semi, 2.0, spleen_angle)
    paint(cavity & (spleen_r < 1 + 0.1 * organ_fields[1](x, y, z)), Tissue.SPLEEN, LABELS["spleen"])

    spine_y = half_d - fat_t - 40
    kidneys = ((-1, LABELS["right kidney"], kidney_z[0], kidney_semi[0], organ_fields[2]),
               (1, LABELS["left kidney"], kidney_z[1], kidney_semi[1], organ_fields[3]))
    for side, label, kz, semi, field in kidneys:
        kc = (side * 60 * s, spine_y - 10, kz)
        angle = side * np.deg2rad(25)
        kr = _radius(x, y, z, kc, semi, 2.0, angle) - 0.06 * field(x, y, z)
        sinus = _radius(x, y, z, (kc[0] - side * semi[0] * 0.8, kc[1] - 5, kz), semi * [0.5, 0.4, 0.45])
        paint((kr < 1) & (sinus >= 1), Tissue.KIDNEY_CORTEX, label)
        paint((kr < 0.65) & (sinus >= 1), Tissue.KIDNEY_MEDULLA, label)
        paint((kr < 1) & (sinus < 1), Tissue.FAT)

    paint((x - 12) ** 2 + (y - (spine_y - 30)) ** 2 < 11**2, Tissue.ARTERY)
    paint((x + 25) ** 2 + (y - (spine_y - 28)) ** 2 < 12**2, Tissue.VEIN)
    psoas = np.clip((15 - z) / 60, 0, 1) * 16
    for side in (-1, 1):
        paint((x - side * 38) ** 2 + (y - (spine_y - 5)) ** 2 < psoas**2, Tissue.MUSCLE)
        paint(_radius(x, y, 0 * z, (side * 32, spine_y + 30, 0), (22, 17, 1)) < 1, Tissue.MUSCLE)
    body_vert = x**2 / 17**2 + (y - spine_y) ** 2 / 15**2
    disc = np.broadcast_to(np.mod(z + 200, 32) < 6, shape)
    paint(body_vert < 1, Tissue.BONE)
    paint(body_vert < 0.72, Tissue.MARROW)
    paint((body_vert < 1) & disc, Tissue.DISC)
    paint(_radius(x, y, 0 * z, (0, spine_y + 28, 0), (22, 8, 1)) < 1, Tissue.BONE)
    paint(x**2 + (y - (spine_y + 20)) ** 2 < 8**2, Tissue.CSF)

    ribs = (wall_r < 1) & (cavity_r >= 1) & (np.mod(z + 200, 26) < 9) & (z > -25) & ((np.abs(x) > 60) | (y > 20))
    paint(ribs, Tissue.BONE)
    texture = texture_field(x, y, z)
    return Anatomy(tissue=tissue, labels=labels, texture=np.broadcast_to(texture, shape).astype(np.float32))
