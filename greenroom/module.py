"""The contract every Greenroom module fulfils."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .api import ApiBlueprint
    from .context import Context

LOAD_TIME = {"x-load-time": True}
"""``json_schema_extra`` marker for settings that only take effect when the module loads."""


SENSITIVE = {"x-sensitive": True}
"""``json_schema_extra`` marker for settings that name a URL the server fetches or hold a secret: the
settings API changes them only when the server's ``allow_remote_settings`` is on."""


def load_time_field(default: Any, description: str, **kwargs: Any) -> Any:
    """A pydantic ``Field`` that the schema marks as applying at load time only."""
    return Field(default, description=description, json_schema_extra=LOAD_TIME, **kwargs)


class ModuleSettings(BaseModel):
    """Base class of module settings: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def load_time_fields(cls) -> list[str]:
        return cls._marked("x-load-time")

    @classmethod
    def sensitive_fields(cls) -> list[str]:
        """Fields marked with :data:`SENSITIVE` (URLs the server fetches, secrets)."""
        return cls._marked("x-sensitive")

    @classmethod
    def _marked(cls, marker: str) -> list[str]:
        return [name for name, f in cls.model_fields.items()
                if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get(marker)]


class ComputeSettings(ModuleSettings):
    """Settings of a module that runs a model: where and in which precision."""

    device: Literal["auto", "cpu", "cuda"] = load_time_field(
        "auto", "Where the model runs. 'auto' follows the server's --cpu/--cuda flags.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = load_time_field(
        "auto", "Numeric precision. 'auto' is float16 on CUDA when the module supports it, float32 on CPU.")


@dataclass(frozen=True)
class Resources:
    """What a module asks of the machine, used by the host to place it."""

    device: Literal["cpu", "cuda", "any"] = "cpu"
    """'cpu': never uses a GPU; 'cuda': prefers one; 'any': follows the server flags."""
    gpu_dtype: str = "float16"
    """The precision used on a GPU when the settings say 'auto'."""
    memory_mb: int = 0
    """Rough memory the loaded model takes, for the operator's planning."""
    cpu_fallback: bool = True
    """Whether a failed GPU load may be retried on the CPU."""


@dataclass(frozen=True)
class Compute:
    """Where the host decided a module runs."""

    device: str  # "cpu" or a torch device string such as "cuda:0"
    dtype: str   # "float32", "float16" or "bfloat16"
    reason: str = ""

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


@dataclass(frozen=True)
class WebPanel:
    """A tab that a module adds to the web page at ``/ui/``: ``script``, a file in the module's ``web_dir``,
    is an ES module exporting ``mount(container, context)``. ``id`` names the tab (``/ui/#<id>``); tabs sort
    by ``order``, then by module name."""

    id: str
    title: str
    script: str
    order: int = 100


class Module:
    """Base class of a Greenroom module.

    Subclasses set the class attributes and write their views in ``routes.py`` beside the class
    (see :mod:`greenroom.views`); modules with a model override :meth:`load` and :meth:`unload`.
    Constructing a module must be cheap: models are loaded in :meth:`load`, once, at start-up.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "0.0.0"
    description: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    """Extra names advertised in ``/api/modules`` while the module is loaded."""
    advertise_name: ClassVar[bool] = True
    """False keeps the module's own name out of ``/api/modules`` (only its aliases show), for names
    that would mislead SillyTavern: plain ``tts`` makes its XTTS provider call routes that don't exist."""
    Settings: ClassVar[type[ModuleSettings]] = ModuleSettings
    resources: ClassVar[Resources] = Resources()
    web_dir: ClassVar[Path | None] = None
    """Static files of the module's web page code, served without the API key at ``/ui/modules/<name>/``."""
    web_panels: ClassVar[tuple[WebPanel, ...]] = ()
    """The module's tabs on the web page (scripts in ``web_dir``); every module also gets a settings form."""
    hookspecs: ClassVar[Any] = None
    """A module of pluggy hookspecs (marked with ``greenroom.hookspec``) that plugins may implement for this
    module, e.g. websearch's engines; the module calls them with ``context.collect``."""

    def __init__(self, context: "Context", settings: ModuleSettings) -> None:
        self.context = context
        self.settings = settings

    def blueprint(self) -> "ApiBlueprint":
        """The module's routes: ``routes`` (a :class:`greenroom.views.Routes`) of the ``routes`` module next to
        the class, bound to this module. Called for every installed module, enabled or not."""
        from importlib import import_module
        package = type(self).__module__.rpartition(".")[0]
        return import_module(f"{package}.routes").routes.blueprint(self)

    def load(self, compute: Compute) -> None:
        """Load models onto ``compute.device``. Raise to report a failed load."""

    def unload(self) -> None:
        """Release models, threads and files. Called once at shutdown."""

    def apply_settings(self, settings: ModuleSettings) -> None:
        """Take live settings (already validated; load-time fields unchanged)."""
        self.settings = settings

    def status(self) -> dict[str, Any]:
        """Extra, module-specific facts for ``/api/modules/<name>``."""
        return {}
