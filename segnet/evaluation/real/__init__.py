"""Real telescope frames: the development set and the real-frame benchmark (``evaluate.py --real``).

- ``devset``: the frames of ``data/real/frames.yaml`` (fetched by ``data/real/fetch.py``) and
  what each frame's camera is (gain, read noise, bias, saturation, detector).
- ``stars``: isolated, round, unsaturated stars and their core pixels, found by photutils.
- ``harness``: the contaminants injected into each frame (seeded draws), every tool run on the
  frame and its injected versions, and the figures: injected recovery, star-core false flags,
  what each tool flags on the frame as it is.
- ``figures`` and ``report``: the PNG per frame, ``real_report.md`` and ``real_metrics.json``.
"""
