"""Inpainting: flagged pixels replaced by what the sky would have shown, for every contaminant class.

Modules, one concept each:
- ``config``: the ``inpaint:`` section of a run config (what the training masks hold);
- ``masks``: training masks, a tile's own contaminants plus masks borrowed from other tiles;
- ``data``: the network's input and target (normalised units) and the training batches;
- ``network``: the U-Net builder and the masked loss (MSE, or Huber);
- ``baselines``: LACosmic's 5x5 masked median and scikit-image's biharmonic fill;
- ``apply``: a trained network on images and tiled frames (predict.py's ``CLEAN`` HDU);
- ``evaluation`` and ``report``: MSE per class and family, aperture photometry, runtimes,
  against both baselines (evaluate.py on an inpainting run).
Import them explicitly; this package imports nothing heavy on its own.
"""
