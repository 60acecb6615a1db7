"""Greenroom's shipped assets: characters, emotions, backdrops and settings.

A package only so that the wheel carries the folder (as ``greenroom_assets``); code finds it through
:func:`greenroom.paths.assets_dir`, and the user's own files come first (:mod:`greenroom.paths`).
"""
