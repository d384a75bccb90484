"""SegNet that flags contaminants in astronomical images, one sigmoid per class.

Modules: ``layers`` (pooling with switches and unpooling), ``model`` (the
builder), ``losses`` (class weights and the weighted loss), ``normalize``
(background and noise normalisation shared by training and prediction).
Import them explicitly; this package imports nothing heavy on its own.
"""
