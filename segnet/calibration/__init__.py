"""Stage 3, calibration: ``pixel`` turns the network's outputs into calibrated probabilities, pixel by
pixel (fitted by evaluate, applied by prediction and baked into the exported graph)."""
