"""Old character folders keep working: SillyTavern-Extras-era _animator.json chains are translated
(known old filter and parameter names), unknown entries are dropped and each drop is named, in the
settings merge and over HTTP (the reply and the log)."""
from __future__ import annotations

import pytest
import requests

from greenroom_modules.postprocessor import validate_chain
from greenroom_modules.postprocessor.legacy import OLD_FILTERS, translate_chain
from greenroom_modules.talkinghead.settings import AnimatorSettings, SettingsError, merge_settings

from .server_process import ServerProcess

# Every filter of Extras' postprocessor.py with its parameters at their defaults there.
EXTRAS_DEFAULTS = [
    ["bloom", {"luma_threshold": 0.8, "hdr_exposure": 0.7}],
    ["chromatic_aberration", {"transverse_sigma": 0.5, "axial_scale": 0.005}],
    ["vignetting", {"strength": 0.42}],
    ["translucency", {"alpha": 0.9}],
    ["alphanoise", {"magnitude": 0.1, "sigma": 0.0, "name": "alphanoise0"}],
    ["lumanoise", {"magnitude": 0.1, "sigma": 0.0, "name": "lumanoise0"}],
    ["analog_lowres", {"kernel_size": 5, "sigma": 0.75}],
    ["analog_badhsync", {"speed": 8.0, "amplitude1": 0.001, "density1": 4.0, "amplitude2": 0.001,
                         "density2": 13.0, "amplitude3": 0.001, "density3": 27.0}],
    ["analog_distort", {"speed": 8.0, "strength": 0.1, "ripple_amplitude": 0.05, "ripple_density1": 4.0,
                        "ripple_density2": 13.0, "ripple_density3": 27.0, "edge": "top"}],
    ["analog_vhsglitches", {"strength": 0.1, "unboost": 4.0, "max_glitches": 3, "min_glitch_height": 3,
                            "max_glitch_height": 6, "hold_min": 1, "hold_max": 3, "name": "analog_vhsglitches0"}],
    ["analog_vhstracking", {"base_offset": 0.03, "max_dynamic_offset": 0.01, "speed": 2.5}],
    ["shift_distort", {"strength": 0.05, "unboost": 4.0, "max_glitches": 3, "min_glitch_height": 20,
                       "max_glitch_height": 30, "hold_min": 1, "hold_max": 3, "name": "shift_distort0"}],
    ["desaturate", {"strength": 1.0, "tint_rgb": [1.0, 1.0, 1.0], "bandpass_reference_rgb": [1.0, 0.0, 0.0],
                    "bandpass_q": 0.0}],
    ["banding", {"strength": 0.4, "density": 2.0, "speed": 16.0}],
    ["scanlines", {"field": 0, "dynamic": True}],
]


def test_every_extras_filter_translates_to_a_valid_chain():
    chain, notes = translate_chain(EXTRAS_DEFAULTS)
    assert len(chain) == len(EXTRAS_DEFAULTS)  # every Extras filter has an equivalent
    assert [name for name, _ in validate_chain(chain)] == [
        "bloom", "chromatic_aberration", "vignetting", "translucent_display", "noise", "noise", "analog_lowres",
        "analog_rippling_hsync", "analog_runaway_hsync", "analog_vhsglitches", "analog_vhstracking",
        "digital_glitches", "desaturate", "banding", "scanlines"]
    assert chain[0][1] == {"threshold": 0.8, "exposure": 0.7}
    assert chain[4][1] == {"channel": "A", "strength": 0.1, "sigma": 0.0}
    assert chain[5][1]["channel"] == "Y"
    assert chain[8][1] == {"speed": 8.0, "strength": 0.1, "placement": "top"}
    assert chain[11][1]["strength"] == pytest.approx(0.025)  # Extras' width was 2.0, ours is 1
    assert "postprocessor_chain[3]: old filter 'translucency' translated to 'translucent_display'" in notes
    assert "postprocessor_chain[6] 'analog_lowres': old parameter 'kernel_size' has no equivalent, dropped" in notes
    dropped = [n for n in notes if "dropped" in n]
    assert len(dropped) == 5  # kernel_size and the four analog_distort ripple parameters


def test_unknown_filters_and_parameters_are_dropped_and_named():
    chain, notes = translate_chain([["crt_warp", {"amount": 3}], "scanlines",
                                    ["vignetting", {"strength": 0.3, "softness": 2}]])
    assert chain == [["scanlines", {}], ["vignetting", {"strength": 0.3}]]
    assert notes == ["postprocessor_chain[0]: unknown filter 'crt_warp' dropped",
                     "postprocessor_chain[2] 'vignetting': unknown parameter 'softness' dropped"]


def test_todays_chains_pass_unchanged_and_bad_shapes_are_left_to_validation():
    today = [["bloom", {"threshold": 0.5}], ["noise", {"channel": "A"}]]
    assert translate_chain(today) == (today, [])
    for bad in ("bloom", {"bloom": {}}, [42], [["bloom", "strong"]]):
        assert translate_chain(bad)[0] == bad


def test_old_names_cover_only_filters_we_have():
    from greenroom_modules.postprocessor import FILTERS
    for old in OLD_FILTERS.values():
        declared = {p.name for p in FILTERS[old.name].params}
        assert {n for n in old.params.values() if n} | set(old.implied) <= declared, old.name


def test_merge_settings_loads_an_old_animator_json_and_warns_per_drop():
    old = {"target_fps": 20, "postprocessor_chain": [["alphanoise", {"magnitude": 0.2}], ["crt_warp", {}]],
           "some_old_key": 1}
    settings, warnings = merge_settings(AnimatorSettings().model_dump(), old)
    assert settings.target_fps == 20
    assert settings.postprocessor_chain == [["noise", {"channel": "A", "strength": 0.2}]]
    assert "unknown setting 'some_old_key' ignored" in warnings
    assert "postprocessor_chain[1]: unknown filter 'crt_warp' dropped" in warnings


def test_merge_settings_still_rejects_bad_values_by_name():
    with pytest.raises(SettingsError) as err:
        merge_settings(AnimatorSettings().model_dump(), {"postprocessor_chain": [["vignetting", {"strength": 99}]]})
    assert err.value.field == "postprocessor_chain" and err.value.extra["param"] == "strength"
    with pytest.raises(SettingsError):
        merge_settings(AnimatorSettings().model_dump(), {"postprocessor_chain": "bloom"})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("legacy")
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nmode = "low_compute"\n'
                      'precompute_emotions = false\n')
    proc = ServerProcess(["--config", str(config), "--enable-modules=talkinghead"])
    yield proc
    proc.stop()


def test_the_settings_call_answers_ok_and_names_each_dropped_entry(server):
    url = server.url
    iid = requests.post(f"{url}/api/talkinghead/load", data={"character": "lambda_00", "new": "true"}).json()["instance_id"]
    try:
        r = requests.post(f"{url}/api/talkinghead/load_animator_settings", params={"instance_id": iid},
                          json={"postprocessor_chain": EXTRAS_DEFAULTS + [["crt_warp", {"amount": 3}]]})
        assert r.status_code == 200 and r.text.startswith("OK; ")
        assert "'crt_warp' dropped" in r.text and "'kernel_size' has no equivalent, dropped" in r.text
        effective = requests.get(f"{url}/api/talkinghead/animator_settings", params={"instance_id": iid}).json()
        assert [e[0] for e in effective["postprocessor_chain"]][:4] == ["bloom", "chromatic_aberration",
                                                                        "vignetting", "translucent_display"]
        assert "crt_warp" in server.log()  # and in the log
    finally:
        requests.post(f"{url}/api/talkinghead/unload", json={"instance_id": iid})
