"""Greenroom's built-in modules, one per folder, each registered through an entry point."""
