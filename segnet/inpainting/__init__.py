"""Inpainting: flagged pixels replaced by what the sky would have shown, for every contaminant class.

Modules, one concept each:
- ``defaults``: what ``CLEAN`` replaces unless told (classes, px the flags grow by);
- ``masks``: training masks, a tile's own contaminants plus masks borrowed from other tiles,
  and a segmentation model's flags grown into holes;
- ``data``: the network's input and target (normalised units) and the training batches;
- ``baselines``: LACosmic's 5x5 masked median and scikit-image's biharmonic fill;
- ``apply``: a trained network on images and tiled frames (predict.py's ``CLEAN`` HDU);
- ``evaluation`` and ``report``: MSE per class and family, aperture photometry, runtimes,
  against both baselines (evaluate.py on an inpainting run).
The network itself and the ``inpaint:`` config section live in ``segnet.network.inpainting`` and
``segnet.training.inpaint_config``. Import them explicitly; this package imports nothing heavy on its own.
"""
