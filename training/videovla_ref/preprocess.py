"""Official image preprocessing of ``sample_video_action.py`` (image2video branch):

1. ``torchvision.transforms.ToTensor()`` on the PIL RGB image: u8 HWC -> float CHW / 255.
2. ``resize_for_rectangle_crop(..., reshape_mode="center")``: torchvision ``resize`` on the *tensor*
   (not on the PIL image) with ``InterpolationMode.BICUBIC`` and the default ``antialias`` -- True for
   tensors in torchvision >= 0.17 (the official build installs 0.20.1) -- to
   ``[S, int(W*S/H)]`` if ``W/H > 1`` else ``[int(H*S/W), S]`` (int() truncates). For float tensors
   torchvision does not clamp, so bicubic overshoot can leave [0, 1] slightly.
3. Crop top = (h-S)//2, left = (w-S)//2.
4. ``x*2-1``. (The official code then casts to bf16 and adds the frame axis: (1,3,1,S,S).)

torchvision's tensor resize is ``F.interpolate(mode="bicubic", align_corners=False, antialias=True)``
on float32, which is what this module calls (torchvision is not a dependency of the reference).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(image_u8) -> torch.Tensor:
    """u8 (H,W,3) numpy/tensor or PIL image -> float32 (3,H,W) in [0,1]."""
    arr = np.asarray(image_u8, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous().float().div(255)


def resize_short_side_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """x (3,H,W) float -> (3,size,size)."""
    H, W = x.shape[-2:]
    if W / H > size / size:
        new = [size, int(W * size / H)]
    else:
        new = [int(H * size / W), size]
    y = F.interpolate(x[None], size=new, mode="bicubic", align_corners=False, antialias=True)[0]
    h, w = y.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return y[:, top : top + size, left : left + size]


def preprocess_image(image_u8, size: int = 256) -> torch.Tensor:
    """u8 (H,W,3) -> float32 (3,size,size) in about [-1,1]."""
    return resize_short_side_center_crop(to_tensor(image_u8), size) * 2.0 - 1.0
