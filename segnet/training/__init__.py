"""Stage 2, training: ``config`` (the typed run config; ``inpaint_config`` its inpainting section),
``dataset`` (simulated samples to batches: inputs, truth, loss weights), ``losses``, ``distribute``
(strategies), ``run_folder`` (a run that describes itself; loading models), ``warm_start`` (a new
model from a trained one's weights)."""
