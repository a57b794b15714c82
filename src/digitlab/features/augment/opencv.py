"""OpenCV back end: rotation, shift and scale with warpAffine, stroke thickness by erosion
or dilation, and Gaussian noise on some images. The ranges mimic how people's handwriting
and cheap cameras vary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitlab.features.augment.base import check_batch, require


@dataclass(frozen=True)
class OpenCVAugmenter:
    name: str = "opencv"
    max_rotation: float = 12.0  # degrees, either way
    max_shift: float = 2.5  # pixels at 28×28 (scaled with the image), either way, per axis
    scale: tuple[float, float] = (0.9, 1.1)
    p_thickness: float = 0.3  # chance of one erosion or dilation step (images of 20 px and more)
    p_noise: float = 0.3  # chance of Gaussian noise on an image
    max_noise_std: float = 50.0  # its standard deviation is drawn from [0, this] (0..255 scale)

    def augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cv2 = require("cv2", "opencv-python-headless")
        images = check_batch(images)
        n, h, w = images.shape
        angles = np.asarray(rng.uniform(-self.max_rotation, self.max_rotation, size=n))  # (n,)
        scales = np.asarray(rng.uniform(self.scale[0], self.scale[1], size=n))  # (n,)
        reach = self.max_shift * w / 28.0
        shifts = rng.uniform(-reach, reach, size=(n, 2))  # (n, 2) as (dx, dy)
        thick = np.asarray(rng.random(size=n) < (self.p_thickness if min(h, w) >= 20 else 0.0))  # (n,)
        thicker = np.asarray(rng.random(size=n) < 0.5)  # (n,)
        kernel = np.ones((2, 2), np.uint8)
        out = np.empty_like(images)
        for k in range(n):
            m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), angles[k], scales[k])  # (2, 3)
            m[:, 2] += shifts[k]
            img = cv2.warpAffine(images[k], m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
            if thick[k]:
                img = cv2.dilate(img, kernel) if thicker[k] else cv2.erode(img, kernel)
            out[k] = img
        noisy = np.asarray(rng.random(size=n) < self.p_noise)  # (n,)
        if noisy.any():
            std = rng.uniform(0.0, self.max_noise_std, size=(int(noisy.sum()), 1, 1))  # (m, 1, 1)
            grain = out[noisy].astype(np.float32) + (rng.standard_normal((int(noisy.sum()), h, w)) * std)
            out[noisy] = np.clip(grain, 0, 255).astype(np.uint8)
        return out
