"""What the simulator (``data_sim``) and the network (``segnet``) share, importing neither.

``resources`` (where the configs, shipped models and runs are), ``classes`` (class names and
colours), ``typed_config`` (YAML into checked dataclasses), ``atomic`` (write-then-rename),
``fits_io`` (reading FITS inputs), ``normalize`` (background and noise), ``stars`` (isolated star
cores), ``devset`` (the real development set), ``tiling`` (tiled, blended prediction).
"""
