"""Gato's image patcher: images -> 16x16 patches in raster order, with each patch's pixel interval.

Paper, section 2.1: images are cut into non-overlapping 16x16 patches in raster order (as in ViT),
pixels are scaled to [-1, 1] and then divided by sqrt(patch size) = 4. Appendix C.3: each patch's
row and column pixel intervals, normalized by the image size, feed the patch position encoding.

Accepted images: `PIL.Image`, numpy arrays or torch tensors; `(H, W)`, `(H, W, C)` or `(C, H, W)`
with 1 or 3 channels (1 channel is repeated to 3; RGBA PIL images are converted to RGB; RGBA arrays are an
error). Without `input_data_format`, the layout of a rank-3 array is read from its shape: channels last if the
last axis has 1 or 3 entries, else channels first if the first axis has; so pass `input_data_format` for an
image whose height or width is 1 or 3 (e.g. a channels-first `(3, H, 3)` would be read as channels last). uint8 (and
other integer) pixels are in [0, 255]; float pixels must already be in [0, 1]. Sizes that are not
multiples of the patch size are padded at the bottom and right with black pixels (value 0); the
intervals are then normalized by the padded size. Pass `size={"height": h, "width": w}` to resize
(bilinear, Pillow) before padding instead.

This file is shipped as remote code: it imports numpy, Pillow, torch and transformers only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature


def _to_numpy(image: Any) -> np.ndarray:
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL.Image, without importing PIL eagerly
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        return np.asarray(image)
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # torch.Tensor
        image = image.detach().cpu()
        if str(image.dtype) == "torch.bfloat16":  # numpy has no bfloat16
            image = image.float()
        return image.numpy()
    return np.asarray(image)


class GatoImageProcessor(BaseImageProcessor):
    r"""Cuts images into patches for Gato.

    Args:
        patch_size (`int`, defaults to 16): side of the square patches.
        patch_scale (`float`, defaults to 4.0): pixels in [-1, 1] are divided by this (sqrt of the patch size).
        do_pad (`bool`, defaults to `True`): pad sizes that are not multiples of `patch_size`; when `False`
            such sizes are an error.
        size (`dict`, *optional*): `{"height": h, "width": w}` to resize every image to before patching.
    """

    model_input_names = ["image_patches", "patch_intervals"]

    def __init__(
        self,
        patch_size: int = 16,
        patch_scale: float = 4.0,
        do_pad: bool = True,
        size: dict[str, int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(patch_size, int) or patch_size <= 0:
            raise ValueError(f"patch_size={patch_size!r} is invalid: expected a positive integer.")
        if size is not None and (not isinstance(size, dict) or set(size) != {"height", "width"}):
            raise ValueError(f"size={size!r} is invalid: expected None or {{'height': int, 'width': int}}.")
        self.patch_size = patch_size
        self.patch_scale = float(patch_scale)
        self.do_pad = do_pad
        self.size = size

    # ------------------------------------------------------------------ one image
    def to_channels_first(
        self, image: Any, input_data_format: str | None = None, field: str = "image"
    ) -> np.ndarray:
        """Return the image as float32 `(3, H, W)` with pixels in [0, 1]."""
        array = _to_numpy(image)
        if array.ndim == 2:
            array = array[None]
            input_data_format = "channels_first"
        if array.ndim != 3:
            raise ValueError(
                f"{field}: expected an image of rank 2 (H, W) or 3 (H, W, C) / (C, H, W), got shape {tuple(array.shape)}."
            )
        if input_data_format is None:
            if array.shape[-1] in (1, 3):
                input_data_format = "channels_last"
            elif array.shape[0] in (1, 3):
                input_data_format = "channels_first"
            else:
                raise ValueError(
                    f"{field}: expected 1 or 3 channels (first or last axis), got shape {tuple(array.shape)}."
                )
        if input_data_format == "channels_last":
            array = np.moveaxis(array, -1, 0)
        elif input_data_format != "channels_first":
            raise ValueError(
                f"input_data_format={input_data_format!r} is invalid: expected 'channels_first' or 'channels_last'."
            )
        if array.shape[0] not in (1, 3):
            raise ValueError(f"{field}: expected 1 or 3 channels, got {array.shape[0]} (shape {tuple(array.shape)}).")
        if array.shape[1] == 0 or array.shape[2] == 0:
            raise ValueError(f"{field}: the image is empty (shape {tuple(array.shape)}).")

        if array.dtype == np.bool_:
            raise ValueError(f"{field}: expected uint8 pixels in [0, 255] or float pixels in [0, 1], got booleans.")
        if np.issubdtype(array.dtype, np.integer):
            if array.dtype != np.uint8 and (array.min() < 0 or array.max() > 255):
                raise ValueError(
                    f"{field}: integer pixels must be in [0, 255], got values in [{array.min()}, {array.max()}]."
                )
            array = array.astype(np.float32) / 255.0
        else:
            if not np.isfinite(array).all():
                raise ValueError(f"{field}: the image has NaN or infinite pixels; expected floats in [0, 1].")
            with np.errstate(over="ignore"):  # values beyond float32's range become inf: reported just below
                array = array.astype(np.float32)
            if array.min() < 0.0 or array.max() > 1.0:
                raise ValueError(
                    f"{field}: float pixels must be in [0, 1], got values in [{array.min():.4g}, {array.max():.4g}]"
                    " (pass uint8 images for [0, 255])."
                )
        if array.shape[0] == 1:
            array = np.repeat(array, 3, axis=0)
        return array

    def _resize(self, array: np.ndarray, size: dict[str, int]) -> np.ndarray:
        from PIL import Image

        channels = [
            np.asarray(Image.fromarray(c, mode="F").resize((size["width"], size["height"]), Image.BILINEAR))
            for c in array
        ]
        return np.clip(np.stack(channels), 0.0, 1.0).astype(np.float32)

    def patchify(
        self,
        image: Any,
        input_data_format: str | None = None,
        size: dict[str, int] | None = None,
        do_pad: bool | None = None,
        field: str = "image",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cut one image into patches.

        Returns:
            patches: float32 `(num_patches, 3, patch_size, patch_size)`, values `(pixel / 255 * 2 - 1) / patch_scale`,
                in raster order (left to right, then top to bottom).
            intervals: float32 `(num_patches, 4)`: `[row_start, row_end, col_start, col_end]` of each patch's pixels,
                divided by the (padded) image height and width, so in [0, 1].
        """
        size = self.size if size is None else size
        do_pad = self.do_pad if do_pad is None else do_pad
        p = self.patch_size
        array = self.to_channels_first(image, input_data_format, field)
        if size is not None:
            array = self._resize(array, size)
        channels, height, width = array.shape
        pad_h, pad_w = (-height) % p, (-width) % p
        if pad_h or pad_w:
            if not do_pad:
                raise ValueError(
                    f"{field}: height {height} and width {width} must be multiples of patch_size={p} when do_pad=False."
                )
            array = np.pad(array, ((0, 0), (0, pad_h), (0, pad_w)))
            height, width = height + pad_h, width + pad_w
        rows, cols = height // p, width // p
        values = (array * 2.0 - 1.0) / self.patch_scale
        # (C, rows, p, cols, p) -> (rows, cols, C, p, p): raster order of patches
        patches = values.reshape(channels, rows, p, cols, p).transpose(1, 3, 0, 2, 4).reshape(rows * cols, channels, p, p)
        row_index, col_index = np.divmod(np.arange(rows * cols), cols)
        intervals = np.stack(
            [row_index * p / height, (row_index + 1) * p / height, col_index * p / width, (col_index + 1) * p / width],
            axis=1,
        ).astype(np.float32)
        return np.ascontiguousarray(patches, dtype=np.float32), intervals

    # ------------------------------------------------------------------ batches
    def preprocess(
        self,
        images: Any,
        return_tensors: str | None = None,
        input_data_format: str | None = None,
        size: dict[str, int] | None = None,
        do_pad: bool | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Patch one image or a list of images.

        Returns a `BatchFeature` with `image_patches` `(batch, num_patches, 3, p, p)` and `patch_intervals`
        `(batch, num_patches, 4)`. Images with different patch counts come back as lists unless they share a size.
        """
        unknown = set(kwargs) - {"data_format", "device"}
        if unknown:
            raise TypeError(f"GatoImageProcessor got unexpected keyword arguments: {sorted(unknown)}")
        if _is_single_image(images):
            images = [images]
        if len(images) == 0:
            raise ValueError("images: expected at least one image, got an empty list.")
        results = [
            self.patchify(img, input_data_format, size, do_pad, field=f"images[{i}]") for i, img in enumerate(images)
        ]
        patches = [r[0] for r in results]
        intervals = [r[1] for r in results]
        if len({p.shape for p in patches}) == 1:
            patches, intervals = np.stack(patches), np.stack(intervals)
        elif return_tensors is not None:
            raise ValueError(
                "images: cannot stack images with different patch counts into one tensor; pass size= to resize them,"
                " or return_tensors=None for lists."
            )
        return BatchFeature({"image_patches": patches, "patch_intervals": intervals}, tensor_type=return_tensors)

    def __call__(self, images: Any, **kwargs) -> BatchFeature:
        return self.preprocess(images, **kwargs)


def _is_single_image(images: Any) -> bool:
    if hasattr(images, "mode") and hasattr(images, "convert"):
        return True
    if isinstance(images, (list, tuple)):
        return False
    return getattr(images, "ndim", 0) in (2, 3)


__all__ = ["GatoImageProcessor"]
