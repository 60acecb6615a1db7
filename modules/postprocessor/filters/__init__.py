# SPDX-License-Identifier: BSD-2-Clause
"""The filters; importing this package registers them all.

Each filter is ``fn(planes, ctx, **params)``: ``planes`` is float32 4 x H x W
(linear R, G, B and straight alpha) and is modified in place.
"""
from . import analog, colour, digital, display, optics  # noqa: F401
