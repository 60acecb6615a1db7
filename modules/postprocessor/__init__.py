# SPDX-License-Identifier: BSD-2-Clause
"""Greenroom's video postprocessor: a chain of self-describing filters over RGBA frames in linear light.

A reusable library (no web framework inside), shared by the talkinghead and
imagefx modules::

    pp = Postprocessor([["bloom", {}], ["scanlines", {"strength": 0.2}]])
    pp.apply(frame)          # float32 HxWx4, linear RGB + alpha, modified in place

See README.md beside this file for the filter catalogue.
"""
from .colorspace import linear_to_rgba8, linear_to_srgb, planes_to_rgba8, rgba8_to_linear, srgb_to_linear
from .params import ChainError, Param
from .pipeline import DEFAULT_CHAIN, Postprocessor
from .registry import FILTERS, MAX_CHAIN_LENGTH, describe_filters, validate_chain
from .upscale import UPSCALE_METHODS, upscale, upscale_planar

__all__ = ["ChainError", "DEFAULT_CHAIN", "FILTERS", "MAX_CHAIN_LENGTH", "Param", "Postprocessor",
           "UPSCALE_METHODS", "describe_filters", "linear_to_rgba8", "linear_to_srgb", "planes_to_rgba8",
           "rgba8_to_linear", "srgb_to_linear", "upscale", "upscale_planar", "validate_chain"]
