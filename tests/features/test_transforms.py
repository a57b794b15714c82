from __future__ import annotations

import numpy as np
import pytest

from digitlab.core.errors import DigitlabError
from digitlab.features.transforms import (
    Deskew,
    Flatten,
    ReduceDims,
    ScaleImages,
    StandardiseImages,
    deskew,
    deskew_memo,
    deskew_reused_s,
    image_moments,
    preprocessing_pipeline,
)


def _slanted_bar(shear: float, shift: int = 0) -> np.ndarray:
    """A vertical stroke sheared by ``shear`` columns per row, shifted right by ``shift``."""
    img = np.zeros((28, 28), dtype=np.uint8)
    for r in range(4, 24):
        c = round(14 + shear * (r - 14)) + shift
        img[r, c - 1 : c + 2] = 255
    return img


def test_deskew_straightens_and_centres_a_slanted_stroke() -> None:
    x = np.stack([_slanted_bar(0.4, shift=3), _slanted_bar(-0.3)])
    _, var_rows, cov = image_moments(x)
    assert np.all(np.abs(cov / var_rows) > 0.25)  # slanted before
    out = deskew(x)
    centre, var_rows, cov = image_moments(out)
    np.testing.assert_allclose(cov / var_rows, 0.0, atol=0.03)  # upright after
    np.testing.assert_allclose(centre, 14.0, atol=0.6)  # centred on its mass
    assert out.dtype == np.float32 and out.shape == x.shape


def test_deskew_keeps_an_upright_centred_digit_and_blank_images() -> None:
    x = np.stack([_slanted_bar(0.0), np.zeros((28, 28), np.uint8)])
    out = deskew(x)
    assert np.abs(out[0] - x[0]).max() < 130  # sub-pixel recentring only
    assert out[1].max() == 0


def test_deskew_chunks_give_the_same_result() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((5000, 8, 8)) > 0.7).astype(np.uint8) * 255
    np.testing.assert_array_equal(deskew(x)[4200:4210], deskew(x[4200:4210]))


def test_deskew_memo_straightens_each_array_once_and_never_serves_a_changed_one() -> None:
    rng = np.random.default_rng(1)
    x = (rng.random((300, 28, 28)) > 0.8).astype(np.uint8) * 255
    step = Deskew().fit(x)
    with deskew_memo():
        first = step.transform(x)
        saved = deskew_reused_s()
        assert step.transform(x.copy()) is first  # same pixels, another array: the same result, not recomputed
        assert deskew_reused_s() > saved  # the time reused is counted, so fit times still compare fairly
        np.testing.assert_array_equal(first, deskew(x))
        assert not first.flags.writeable  # shared between models: nobody may change it
        changed = x.copy()
        changed[7, 3, 3] ^= 255
        again = step.transform(changed)
        assert again is not first
        np.testing.assert_array_equal(again, deskew(changed))
        model = preprocessing_pipeline(deskewed=True).fit(x)  # the rest of the front takes the shared result
        np.testing.assert_array_equal(model.transform(x), preprocessing_pipeline(deskewed=True).fit_transform(x))
    assert step.transform(x) is not first and step.transform(x).flags.writeable  # outside: computed each time


def test_scale_flatten_standardise() -> None:
    x = np.array([[[0, 255], [51, 102]], [[255, 255], [0, 0]]], dtype=np.uint8)
    scaled = ScaleImages().fit_transform(x)
    assert scaled.dtype == np.float32 and scaled.max() == 1.0 and scaled.min() == 0.0
    assert Flatten().fit_transform(x).shape == (2, 4)
    z = StandardiseImages().fit(x).transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-6)
    constant = np.zeros((3, 2, 2), dtype=np.uint8)
    assert np.isfinite(StandardiseImages().fit(constant).transform(constant)).all()


def test_reduce_dims_caps_components_on_small_data() -> None:
    x = np.random.default_rng(0).random((20, 64))
    assert ReduceDims(n_components=50).fit(x).transform(x).shape == (20, 20)


def test_pipeline_front_takes_images() -> None:
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    out = preprocessing_pipeline(deskewed=True, standardise=True).fit_transform(x)
    assert out.shape == (4, 784)


def test_non_image_input_is_refused() -> None:
    with pytest.raises(DigitlabError, match=r"expected images of shape \(n, H, W\)"):
        Deskew().fit(np.zeros((3, 784)))
