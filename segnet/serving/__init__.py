"""Stage 6, serving: ``onnx_export`` and ``runtime`` (the network as prediction runs it), ``priors``
(a frame's own class fractions), ``output`` (the CONTRACT output file), ``prediction`` (one file in,
one mask file out), ``api`` (``load_masker`` for images in memory), ``shipping`` (a run made the
shipped model)."""
