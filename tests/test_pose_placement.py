"""scripts/place_character.py: eyes land where THA3 expects them, edges stay clean, problems are named."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from .server_process import ROOT

spec = importlib.util.spec_from_file_location("place_character", ROOT / "scripts" / "place_character.py")
placement = importlib.util.module_from_spec(spec)
spec.loader.exec_module(placement)

LAMBDA = ROOT / "assets" / "characters" / "lambda_00.png"
# lambda_00's iris centres, measured from the iris_rotation_y morph through POST /api/talkinghead/pose.
EYES = ((229.4, 149.1), (284.9, 143.0))


def test_a_generated_picture_is_brought_back_to_the_template():
    """lambda_00 drawn twice as large and off centre (as a generator would give it) comes back in place."""
    original = Image.open(LAMBDA).convert("RGBA")
    big = Image.new("RGBA", (1400, 1200), (0, 0, 0, 0))
    big.paste(original.resize((1024, 1024), Image.LANCZOS), (300, 90))
    eyes = [(x * 2 + 300, y * 2 + 90) for x, y in EYES]
    distance = float(np.hypot(EYES[1][0] - EYES[0][0], EYES[1][1] - EYES[0][1]))
    mid = ((EYES[0][0] + EYES[1][0]) / 2, (EYES[0][1] + EYES[1][1]) / 2)
    placed = placement.place(big, eyes[0], eyes[1], distance, mid)
    assert placed.size == (512, 512) and placed.mode == "RGBA"
    a, b = np.asarray(placed, np.float32), np.asarray(original, np.float32)
    assert np.abs(a[..., 3] - b[..., 3]).mean() < 2.0  # the same silhouette, to resampling noise
    assert np.abs(a - b)[32:224, 160:352].mean() < 5.0  # the same face where THA3 looks (1 px off gives 5.7)
    assert placement.problems(big, placed) == []


def test_default_target_and_warnings():
    original = Image.open(LAMBDA).convert("RGBA")
    placed = placement.place(original, *EYES)
    alpha = np.asarray(placed)[..., 3]
    assert alpha[142, 256] == 255 and alpha[0, 0] == 0  # between the eyes is opaque, the corner transparent
    opaque = Image.new("RGBA", (512, 512), (255, 255, 255, 255))
    assert any("transparent" in p for p in placement.problems(opaque, placement.place(opaque, *EYES)))
    wrong = placement.place(original, (10, 500), (60, 500))  # eyes clicked at the feet: the face square is empty
    assert any("face square" in p for p in placement.problems(original, wrong))
    with pytest.raises(ValueError, match="alpha"):
        placement.place(original.convert("RGB"), *EYES)
