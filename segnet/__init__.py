"""SegNet that flags contaminants in astronomical images, one sigmoid per class.

Modules, one concept each:
- the network: ``layers`` (pooling with switches, unpooling), ``model`` (the builder);
- training: ``config`` (typed run config), ``dataset`` (the network input, batches,
  class fractions), ``losses`` (class weights, the weighted loss), ``distribute``
  (strategies), ``run_folder`` (a run that describes itself; model loading);
- evaluation: ``metrics`` (streaming ROC/MCC/calibration, prior adjustment),
  ``evaluation`` (test tiles, the LACosmic baseline), ``report`` (tables and plots);
- ``calibration``: the network's outputs turned into calibrated probabilities, with the
  pixel's own contrast (fitted by evaluate.py, applied by prediction);
- prediction: ``normalize`` (background and noise, strip by strip), ``inference``
  (tiled, blended prediction), ``fits_io`` (inputs and CONTRACT.md outputs),
  ``prediction`` (one file in, one mask file out);
- ``inpainting/``: the flagged pixels replaced (network, classical baselines, evaluation);
- ``api``: ``load_masker``, masks for images in memory (CONTRACT.md's Python API).
Import them explicitly; this package imports nothing heavy on its own: ``segnet.load_masker``
is looked up in ``segnet.api`` when first used.
"""


def __getattr__(name):
    if name == "load_masker":
        from segnet.api import load_masker

        return load_masker
    raise AttributeError(f"module 'segnet' has no attribute {name!r}")
