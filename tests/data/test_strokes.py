"""Stand-in writers and the held-out construction of issue 32: a family held out is never drawn by a training
writer (not its own glyphs, not the ones it shares), its check set is drawn from its glyphs only, and the
cnn-hands recipe's writers (and so the shipped reader's digits) change only when the recipe does."""

from __future__ import annotations

import numpy as np
import pytest

from digitlab.data import strokes


@pytest.mark.parametrize("family", list(strokes.FAMILIES))
def test_a_held_out_family_is_never_drawn_by_a_training_writer(family: str) -> None:
    recipe = dict(strokes.FAMILY_WEIGHTS)
    banned = strokes.glyphs_of(family)
    with strokes.holding_out(family):
        assert family not in strokes.FAMILY_WEIGHTS and set(strokes.FAMILY_WEIGHTS) == set(strokes.FAMILIES) - {family}
        rng = np.random.default_rng(3)
        for _ in range(300):
            writer = strokes.random_writer(rng)
            assert {d for d, _ in writer.families} == set(writer.templates)
            for digit, source in writer.families:  # where each glyph came from: an allowed family, an allowed glyph
                assert source != family and id(strokes.FAMILIES[source][digit]) not in banned, (family, digit, source)
        x, y = strokes.synthetic_digits(5, seed=1, progress=False)
        assert len(x) == len(y) and set(y.tolist()) <= set(range(10))
    assert recipe == strokes.FAMILY_WEIGHTS  # restored
    assert not strokes._BANNED


def test_shared_glyphs_are_held_out_with_the_family_that_shares_them() -> None:
    # rounded keeps plain's 0–3, 5–7 and 9: holding out rounded holds those out too, so writers take continental's
    assert strokes.ROUNDED[0] is strokes.PLAIN[0] and strokes.ROUNDED[4] is not strokes.PLAIN[4]
    with strokes.holding_out("rounded"):
        rng = np.random.default_rng(0)
        sources = {dict(strokes.random_writer(rng).families)[0] for _ in range(50)}
        assert sources == {"continental"}


def test_the_recipes_writers_draw_every_family_and_the_same_stream() -> None:
    """The shipped reader's synthetic digits: every family, varied as the recipe says, the stream pinned (a change
    to the writers is a change to the recipe: remake the reader, benchmarks/make_reader.py)."""
    assert set(strokes.FAMILY_WEIGHTS) == set(strokes.FAMILIES)
    assert strokes.VARIATION == strokes.RECIPE_VARIATION == strokes.Variation(drop=0.5, strike=0.15)
    a, _ = strokes.synthetic_digits(3, seed=0, progress=False)
    b, _ = strokes.synthetic_digits(3, seed=0, progress=False)
    assert np.array_equal(a, b)
    import hashlib

    assert hashlib.sha256(a.tobytes()).hexdigest()[:16] == "2899b399ab8e634a"  # the shipped reader's stream


def test_a_family_check_set_is_drawn_from_its_glyphs_and_photographed() -> None:
    cells = strokes.family_check_set("rounded", n_per_class=1, seed=0)
    assert set(cells) == set(strokes.CONDITIONS)
    for x, y in cells.values():
        assert x.shape == (10, 28, 28) and x.dtype == np.uint8 and y.tolist() == list(range(10))
        assert (x.reshape(10, -1).max(axis=1) > 0).all()  # every digit has ink after the photograph
    again = strokes.family_check_set("rounded", n_per_class=1, seed=0)
    assert all(np.array_equal(cells[k][0], again[k][0]) for k in cells)  # the same seed, the same pictures


def test_optional_strokes_are_left_out_only_when_asked() -> None:
    """Variation.drop: a writer may leave out a glyph's optional strokes (a 1's base, a 7's crossbar, a 0's
    slash); with no variation every stroke is copied."""
    with strokes.holding_out("plain", weights={"continental": 1.0}):  # every glyph from continental
        with strokes.varying(strokes.Variation(drop=1.0)):
            writer = strokes.random_writer(np.random.default_rng(0))
        assert [len(writer.templates[d]) for d in (0, 1, 7)] == [1, 1, 1]  # slash, base and crossbar left out
        assert len(writer.templates[4]) == len(strokes.CONTINENTAL[4])  # not optional: kept
        with strokes.varying(strokes.NO_VARIATION):
            writer = strokes.random_writer(np.random.default_rng(0))
        assert [len(writer.templates[d]) for d in (0, 1, 7)] == [2, 2, 2]


def test_a_strike_crosses_the_digit_and_a_bend_turns_its_strokes() -> None:
    """Variation.strike adds one straight stroke through the middle; Variation.bend moves every stroke's points
    but keeps its middle; the same seed gives the same writer; the recipe's variation is what random writers do."""
    assert strokes.VARIATION == strokes.RECIPE_VARIATION
    with strokes.holding_out("continental", weights={"school": 1.0}), strokes.varying(strokes.Variation(strike=1.0)):
        writer = strokes.random_writer(np.random.default_rng(0))
    assert all(len(writer.templates[d]) == len(strokes.SCHOOL[d]) + 1 for d in range(10))
    bar = np.asarray(writer.templates[1][-1])  # (m, 2) a straight line through the middle
    assert np.abs(bar.mean(axis=0) - 0.5).max() < 0.1 and np.linalg.norm(bar[-1] - bar[0]) > 0.25
    with strokes.holding_out("continental", weights={"school": 1.0}), strokes.varying(strokes.Variation(bend=20)):
        bent = strokes.random_writer(np.random.default_rng(0))
        again = strokes.random_writer(np.random.default_rng(0))
    with strokes.holding_out("continental", weights={"school": 1.0}), strokes.varying(strokes.NO_VARIATION):
        plain = strokes.random_writer(np.random.default_rng(0))
    assert bent.templates == again.templates and bent.templates[1] != plain.templates[1]
    assert strokes.VARIATION == strokes.RECIPE_VARIATION  # restored after each block
