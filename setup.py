"""The wheel's packages: greenroom (with its server and web subpackages), the shipped assets, and every package under modules/ as
greenroom_modules.<name> (pyproject.toml maps the folders), so a new built-in module ships without an
edit here. Everything else is configured in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=["greenroom", "greenroom.server", "greenroom.web", "greenroom_assets", "greenroom_modules",
                *(f"greenroom_modules.{name}" for name in find_packages("modules"))])
