"""talkinghead: an animated THA3 avatar for SillyTavern and other clients (AGPL-3.0-or-later)."""
