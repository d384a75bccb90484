"""Stage 1, the networks: ``layers`` (pooling with switches, unpooling, padding), ``model`` (the SegNet
builder, batch-normalisation folding, FLOP count), ``inpainting`` (the U-Net that fills flagged pixels
and its loss). Keras layers written with ``keras.ops`` only (TensorFlow and JAX backends)."""
