"""Scale-out on existing engines, chosen by ``distribute.strategy`` in the config.

TensorFlow backend: ``tf.distribute.MirroredStrategy`` (several devices on one
machine) or ``MultiWorkerMirroredStrategy`` (several machines, cluster from
``TF_CONFIG``); the model is built and compiled inside the strategy's scope and
Keras splits each global batch across replicas. JAX backend:
``keras.distribution.DataParallel``. Nothing here distributes by hand.
"""

from __future__ import annotations

import contextlib

import keras

from foundation.typed_config import ConfigError
from segnet.training.config import DistributeConfig


def distribution_scope(cfg: DistributeConfig):
    """A context manager under which the model must be built (or loaded) and compiled."""
    backend = keras.backend.backend()
    if cfg.strategy == "none":
        return contextlib.nullcontext()
    if cfg.strategy in ("mirrored", "multi_worker"):
        if backend != "tensorflow":
            raise ConfigError(
                f"distribute.strategy: {cfg.strategy!r} needs the TensorFlow backend, "
                f"this process runs {backend!r} (use 'data_parallel' under JAX)"
            )
        import tensorflow as tf

        if cfg.strategy == "mirrored":
            strategy = tf.distribute.MirroredStrategy(devices=list(cfg.devices) or None)
        else:
            if cfg.devices:
                raise ConfigError(
                    "distribute.devices: not used by 'multi_worker' (devices come from TF_CONFIG), "
                    f"got {list(cfg.devices)}"
                )
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        print(f"distribute: {cfg.strategy}, {strategy.num_replicas_in_sync} replica(s)", flush=True)
        return strategy.scope()
    # data_parallel
    if backend != "jax":
        raise ConfigError(
            f"distribute.strategy: 'data_parallel' needs the JAX backend, this process runs "
            f"{backend!r} (use 'mirrored' under TensorFlow)"
        )
    devices = list(cfg.devices) or keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    print(f"distribute: data_parallel over {len(devices)} device(s)", flush=True)
    return contextlib.nullcontext()
