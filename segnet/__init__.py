"""SegNet that flags contaminants in astronomical images, one sigmoid per class.

Folders by stage, in the order data flows (a module imports only its own stage or an
earlier one; ``tests/test_layout.py`` checks it): ``network/`` -> ``training/`` ->
``calibration/`` -> ``evaluation/`` -> ``inpainting/`` -> ``serving/``, then the jobs a user
runs, ``commands/`` and ``cli`` (the ``segnet`` command). Below them all, ``data_sim`` (the
simulator) and ``foundation`` (class names, typed configs, atomic writes, FITS reading,
background and noise, star cores, the real development set, tiling, where files are).
This package imports nothing heavy on its own: ``segnet.load_masker`` is looked up in
``segnet.serving.api`` when first used.
"""


def __getattr__(name):
    if name == "load_masker":
        from segnet.serving.api import load_masker

        return load_masker
    raise AttributeError(f"module 'segnet' has no attribute {name!r}")
