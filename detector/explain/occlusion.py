"""Occlusion: slide a grey patch over the image and watch each detection's score drop.

Gradient-free, so it works for any graph. The image is divided into ``grid`` × ``grid`` cells;
a patch of ``patch_cells`` × ``patch_cells`` cells slides one cell at a time, and each cell's
heat is the mean score drop of the patches covering it. One pass serves every detection of
the image (the scores of all of them are read from each occluded run), so the cost per
detection falls as detections share an image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Scores of the targets in a batch of RGB images: ``[B, H, W, 3]`` → ``[B, T]``.
ScoreFn = Callable[[np.ndarray], np.ndarray]


def occlusion_maps(
    image_rgb: np.ndarray,
    score_fn: ScoreFn,
    *,
    grid: int = 16,
    patch_cells: int = 3,
    batch: int = 8,
    grey: int = 128,
) -> np.ndarray:
    """Score-drop maps of every target, on the cell grid.

    Args:
        image_rgb: RGB ``uint8 (H, W, 3)``.
        score_fn: The targets' scores for a batch of images.
        grid: Cells per side.
        patch_cells: Patch side in cells (the patch slides one cell at a time).
        batch: Occluded images per ``score_fn`` call.
        grey: Patch value.

    Returns:
        ``(T, grid, grid)`` float32 maps, ≥ 0 (only drops count as evidence).
    """
    if grid < 1 or not 1 <= patch_cells <= grid:
        raise ValueError(f"occlusion needs 1 <= patch_cells <= grid; got {patch_cells}, {grid}")
    height, width = image_rgb.shape[:2]
    ys = np.rint(np.linspace(0, height, grid + 1)).astype(int)
    xs = np.rint(np.linspace(0, width, grid + 1)).astype(int)
    base = np.asarray(score_fn(image_rgb[None]), np.float32)[0]
    steps = grid - patch_cells + 1
    positions = [(i, j) for i in range(steps) for j in range(steps)]
    total = np.zeros((len(base), grid, grid), np.float32)
    count = np.zeros((grid, grid), np.float32)
    for start in range(0, len(positions), batch):
        chunk = positions[start : start + batch]
        images = np.repeat(image_rgb[None], len(chunk), axis=0)
        for k, (i, j) in enumerate(chunk):
            images[k, ys[i] : ys[i + patch_cells], xs[j] : xs[j + patch_cells]] = grey
        scores = np.asarray(score_fn(images), np.float32)
        for k, (i, j) in enumerate(chunk):
            total[:, i : i + patch_cells, j : j + patch_cells] += (base - scores[k])[:, None, None]
            count[i : i + patch_cells, j : j + patch_cells] += 1.0
    heat: np.ndarray = np.maximum(total / count, 0.0)
    return heat
