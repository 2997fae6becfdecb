"""The reference preprocessing vs the official torchvision calls (ToTensor on a PIL image, tensor
resize with BICUBIC and the default antialias, crop). Skipped if torchvision is not installed
(it is not a dependency of the reference; e.g. `pip install --no-deps torchvision`)."""

import numpy as np
import pytest
import torch

from videovla_ref.preprocess import preprocess_image


def official(image_u8: np.ndarray, size: int) -> torch.Tensor:
    tv = pytest.importorskip("torchvision")
    import torchvision.transforms as TT
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    arr = TT.ToTensor()(Image.fromarray(image_u8, "RGB")).unsqueeze(0)
    image_size = [size, size]
    if arr.shape[3] / arr.shape[2] > image_size[1] / image_size[0]:
        arr = resize(arr, size=[image_size[0], int(arr.shape[3] * image_size[0] / arr.shape[2])],
                     interpolation=InterpolationMode.BICUBIC)
    else:
        arr = resize(arr, size=[int(arr.shape[2] * image_size[1] / arr.shape[3]), image_size[1]],
                     interpolation=InterpolationMode.BICUBIC)
    h, w = arr.shape[2], arr.shape[3]
    arr = arr.squeeze(0)
    top, left = (h - image_size[0]) // 2, (w - image_size[1]) // 2
    arr = TT.functional.crop(arr, top=top, left=left, height=image_size[0], width=image_size[1])
    return arr * 2.0 - 1.0


@pytest.mark.parametrize("hw,size", [((45, 61), 32), ((50, 37), 32), ((480, 640), 256), ((224, 224), 256), ((300, 200), 256)])
def test_preprocess_vs_torchvision(hw, size):
    rng = np.random.default_rng(hw[0] * 1000 + hw[1])
    img = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
    want = official(img, size)
    got = preprocess_image(img, size)
    assert got.shape == want.shape == (3, size, size)
    e = ((got - want).norm() / want.norm()).item()
    print(f"preprocess {hw} -> {size}: rel err vs torchvision {e:.3e}")
    assert e < 1e-6
