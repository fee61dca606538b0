"""Explain a detection: heat maps of where an SSD frozen graph looked for it.

Each kept detection is mapped back to the anchor that produced it (from the pre-NMS decoded
boxes and class scores), and the pre-NMS class logit of that anchor is explained three ways:

* ``gradcam`` — Grad-CAM at a feature map (channel weights = mean gradient over the map),
  the finest map the SSD heads read, or the one named with ``--layer``;
* ``gradxact`` — element-wise gradient × activation at a finer backbone map found from the
  graph (38×38 on the default model), summed over channels: an instance map;
* ``occlusion`` — a grey patch slid over the image while that detection's score is watched:
  no gradient needed, works for any graph.

Modules: :mod:`.graph` (where the tensors are, from the graph), :mod:`.anchors` (detection →
anchor), :mod:`.heatmaps` (maps, peaks, shares; NumPy), :mod:`.model` (the TensorFlow side),
:mod:`.occlusion`, :mod:`.overlay` (PNG), :mod:`.export` (a frozen graph carrying its own
explanation outputs), :mod:`.explainer` (images → PNGs + ``explain.json``).
TensorFlow is imported lazily, by :mod:`.model` and :mod:`.export` only.
"""

from __future__ import annotations

METHODS = ("gradxact", "gradcam", "occlusion")
#: The default method: gradient × activation pointed into the box for the most detections on
#: the sample photos (docs/PERFORMANCE.md, "Explain").
DEFAULT_METHOD = "gradxact"

__all__ = ["DEFAULT_METHOD", "METHODS"]
