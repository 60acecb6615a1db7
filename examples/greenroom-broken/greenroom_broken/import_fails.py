"""Fails while being imported, as a plugin with a missing dependency would."""
import greenroom_dependency_that_is_not_installed  # noqa: F401
