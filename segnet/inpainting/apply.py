"""A trained inpainting network applied to images and frames: the ``CLEAN`` image.

``CLEAN`` is the input where nothing is replaced, bit for bit (as float32: an
integer or float32 input is copied exactly, a float64 one rounded to float32),
and the network's prediction on the replaced pixels. Frames of any size go
through the same tiles as prediction (``foundation.tiling.run_tiles``), blended
with weights that sum to 1, in bounded memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from foundation.normalize import BackgroundGrid
from foundation.tiling import RowStrips, TileSettings, run_tiles
from segnet.inpainting.data import decode, encode, normalisation
from segnet.network.inpainting import INPUT_CHANNELS, fold_batch_norm

__all__ = ["Inpainter", "resolve_inpaint_model", "STRIP"]

STRIP = 256  # rows copied at a time when the frame is finished


def resolve_inpaint_model(where: str | Path) -> Path:
    """The ``.keras`` file of an inpainting model: ``where`` is the file or its folder.

    Raises ``run_folder.NoModelError`` naming the path and how to get one.
    """
    from segnet.training.run_folder import NoModelError, resolve_model

    where = Path(where)
    try:
        return resolve_model(where)[0]  # a .keras file, or a folder's model.keras or last checkpoint
    except NoModelError:
        pass
    hint = "; train one with 'python train.py --config inpaint.yaml' and pass --inpaint-model runs/<run>"
    if where.suffix == ".keras":
        raise NoModelError(f"{where}: no such inpainting model file{hint}")
    what = "holds no model.keras nor checkpoints/last.keras" if where.is_dir() else "no such folder"
    raise NoModelError(f"{where}: no inpainting model there ({what}){hint}")


class Inpainter:
    """A loaded inpainting network and its identity (for FITS headers)."""

    def __init__(self, model_path: str | Path):
        from segnet.training.run_folder import load_model

        self.model_path = Path(model_path)
        self.model = load_model(self.model_path)
        inputs, outputs = self.model.inputs[0].shape, self.model.outputs[0].shape
        if inputs[-1] != len(INPUT_CHANNELS) or outputs[-1] != 1:
            raise ValueError(
                f"{self.model_path}: not an inpainting model (input channels {inputs[-1]}, output "
                f"channels {outputs[-1]}; expected {len(INPUT_CHANNELS)} and 1)"
            )
        self.model = fold_batch_norm(self.model)  # inference only: one pass over memory less per layer
        digest = hashlib.sha256(self.model_path.read_bytes()).hexdigest()[:16]
        self.identity = {
            "INPMODEL": (f"{self.model_path.parent.name}/{self.model_path.name}"[-68:], "inpainting model"),
            "INPMSHA": (digest, "sha256 of its .keras file (first 16 hex digits)"),
        }

    def images(self, images, replace, saturated=None) -> list[np.ndarray]:
        """Inpaint equally sized small images in one forward pass.

        Parameters
        ----------
        images : sequence of (ny, nx) arrays, any units (ADU).
        replace : sequence of (ny, nx) bool, pixels to replace.
        saturated : optional sequence of (ny, nx) bool, kept out of the background and noise estimates.

        Returns
        -------
        list of (ny, nx) float32: each image with its ``replace`` pixels predicted, every other
        pixel the input's (as float32), bit for bit.
        """
        saturated = [None] * len(images) if saturated is None else saturated
        xs, maps = [], []
        for image, mask, sat in zip(images, replace, saturated):
            background, sigma = normalisation(image, mask, sat)
            x, fill, unit = encode(image, mask, background, sigma)
            xs.append(x)
            maps.append((background, sigma, fill, unit))
        if not xs:
            return []
        y = np.asarray(self.model.predict_on_batch(np.stack(xs)))[..., 0]
        return [compose(image, mask, decode(y_k, *m)) for image, mask, y_k, m in zip(images, replace, y, maps)]

    def image(self, image, replace, saturated=None) -> np.ndarray:
        """One small image; see `images`."""
        return self.images([image], [replace], None if saturated is None else [saturated])[0]

    def frame(self, image, replace, out, *, settings: TileSettings = TileSettings(), mask=None, progress=None) -> None:
        """Inpaint a frame of any size tile by tile, writing the CLEAN image into ``out``.

        Parameters
        ----------
        image : (ny, nx) array-like read by slices (numpy array, memmap, FITS ``section``).
        replace : (ny, nx) bool ndarray, pixels to replace.
        out : (ny, nx) float32 array of zeros (a memmap is fine).
        mask : (ny, nx) bool, pixels kept out of the background and noise estimates besides
            ``replace`` (saturated, known bad), or None.
        progress : optional callable, called with the number of tiles done after each batch.
        """
        replace = np.asarray(replace, bool)
        grid = BackgroundGrid(image, mask=replace if mask is None else (replace | mask))
        read = RowStrips(image)

        def encode_window(ys, xs):
            background, sigma = grid.window(ys, xs)
            x, fill, unit = encode(read(ys, xs), replace[ys, xs], background, sigma)
            return x, (background, sigma, fill, unit)

        def decode_core(p, maps, cy, cx):
            background, sigma, fill, unit = maps
            return decode(p[0], background[cy, cx], sigma[cy, cx], fill[cy, cx], unit[cy, cx])[None]

        run_tiles(
            self.model,
            image.shape,
            out[None],
            encode=encode_window,
            decode=decode_core,
            settings=settings,
            progress=progress,
        )
        for y in range(0, image.shape[0], STRIP):
            rows = slice(y, y + STRIP)
            out[rows] = compose(image[rows], replace[rows], out[rows])


def compose(image, replace, predicted) -> np.ndarray:
    """``predicted`` where ``replace``, else ``image``; float32. Unreplaced pixels are copied, never computed."""
    out = np.array(image, dtype=np.float32)
    out[replace] = np.asarray(predicted, np.float32)[replace]
    return out
