"""Stage 4, evaluation: ``metrics`` (streaming ROC, MCC, calibration; prior adjustment), ``tiles``
(held-out simulated tiles and the LACosmic baseline), ``report`` and ``figures`` (tables and plots),
``real/`` (the real-frame benchmark)."""
