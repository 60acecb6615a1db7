"""The command line, compatible with SillyTavern-Extras' flags."""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from ..config import ConfigError, HostConfig
from ..paths import DATA_DIR_ENV
from .config_file import read_config_file

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "plugins.toml"


def parse_module_list(value: str) -> list[str]:
    """``"a, b,'c'"`` -> ``["a", "b", "c"]`` (quotes stripped, spaces trimmed, empties dropped)."""
    return [v.strip().strip("'\"").strip() for v in value.strip("'\"").split(",") if v.strip().strip("'\"")]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="server.py", description="Greenroom: a SillyTavern-Extras-compatible module host.")
    p.add_argument("--enable-modules", type=parse_module_list, metavar="A,B", help="comma-separated modules to serve")
    p.add_argument("--port", type=int, help="port to listen on (default 5100)")
    p.add_argument("--listen", action="store_true", default=None, help="bind 0.0.0.0 (default: 127.0.0.1 only)")
    p.add_argument("--secure", action="store_true", default=None, help="require an API key (Authorization: Bearer)")
    p.add_argument("--api-key-file", help="where the API key is kept (default ~/.config/greenroom/api_key.txt)")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--cpu", action="store_true", help="run models on the CPU (the default)")
    dev.add_argument("--cuda", action="store_true", help="run models on CUDA where a module can")
    p.add_argument("--cuda-device", help="CUDA device for --cuda, e.g. cuda:1 (default cuda:0)")
    p.add_argument("--max-content-length", type=float, metavar="MIB", help="largest request body in MiB")
    p.add_argument("--config", type=Path, help=f"the plugins.toml to read (default {DEFAULT_CONFIG.name} beside server.py)")
    p.add_argument("--list-modules", action="store_true", help="list installed modules and plugins, then exit")
    p.add_argument("--print-config", action="store_true", help="print a plugins.toml documenting every setting")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--access-log", action="store_true", default=None, help="log every request's shape, not only failures")
    p.add_argument("--worker-id", help="this worker's name behind a load balancer; prefixes the ids it creates")
    p.add_argument("--drain-timeout", type=float, metavar="SECONDS", help="on SIGTERM, drain this long first")
    p.add_argument("--data-dir", type=Path, help="user data folder (characters, emotion sets), shared by the "
                                                 "workers of a cluster; sets $GREENROOM_DATA_DIR")
    return p


def load_config(args: argparse.Namespace) -> HostConfig:
    path = args.config if args.config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    config = read_config_file(path)
    overrides = {
        "enable_modules": args.enable_modules, "port": args.port, "listen": args.listen, "secure": args.secure,
        "api_key_file": args.api_key_file, "cuda_device": args.cuda_device,
        "max_content_length_mb": args.max_content_length, "log_level": args.log_level,
        "access_log": args.access_log, "worker_id": args.worker_id, "drain_timeout_s": args.drain_timeout,
        "device": "cuda" if args.cuda else ("cpu" if args.cpu else None),
    }
    merged = {**config.server.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    try:
        config.server = type(config.server).model_validate(merged)
    except Exception as exc:
        raise ConfigError(f"command line: {exc}") from None
    return config


def _installed(config: HostConfig):
    """Discover and construct every installed module without loading any."""
    from ..host import Host
    from ..plugins import PluginRegistry
    registry = PluginRegistry()
    registry.discover()
    config.server.enable_modules = []
    host = Host(config, registry)
    host.build_modules()
    return registry, host


def print_config(config: HostConfig) -> int:
    from .tomldoc import render_plugins_toml
    _, host = _installed(config)
    print(render_plugins_toml((r.name, r.cls.description, r.cls.Settings) for r in host.records.values()), end="")
    return 0


def list_modules(config: HostConfig) -> int:
    registry, host = _installed(config)
    print(f"{'module':<16}{'version':<10}{'from':<28}status")
    for plugin in registry.listing():
        origin = "built-in" if plugin["builtin"] else plugin["distribution"]
        if plugin["error"]:
            print(f"{plugin['name']:<16}{plugin['version']:<10}{origin:<28}BROKEN: {plugin['error']}")
            continue
        for name in plugin["modules"]:
            rec = host.records.get(name)
            version = rec.cls.version if rec else plugin["version"]
            aliases = f" (also {', '.join(rec.cls.aliases)})" if rec and rec.cls.aliases else ""
            print(f"{name:<16}{version:<10}{origin:<28}ok: {rec.cls.description if rec else ''}{aliases}")
    return 0


def tune_malloc(arenas: int = 2, mmap_threshold: int = 32 * 2**20, trim_threshold: int = 64 * 2**20) -> None:
    """Fix glibc's allocator for a server that frees the same 1-16 MiB buffers 25 times a second per avatar,
    before any thread starts (as MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ would;
    an operator's own setting of each wins).

    - Two arenas: by default each new thread gets its own (up to 8 per core), keeping what it freed; avatar
      sessions start two threads each, and 200 create/delete cycles grew RSS from 1.5 to 2.2 GiB.
    - Frame and tensor buffers (under 32 MiB) come from the arenas, and an arena keeps up to 64 MiB of free
      memory at its top: with a 1 MiB mmap threshold every such buffer was a fresh mapping, and one talking
      CPU avatar took 290,000 page faults a second, 45 % of the process's CPU time in the kernel.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    for env, param, value in (("MALLOC_ARENA_MAX", -8, arenas), ("MALLOC_MMAP_THRESHOLD_", -3, mmap_threshold),
                              ("MALLOC_TRIM_THRESHOLD_", -1, trim_threshold)):
        if not os.environ.get(env):
            mallopt(param, value)  # M_ARENA_MAX, M_MMAP_THRESHOLD (fixed: no dynamic raise), M_TRIM_THRESHOLD


def main(argv: Sequence[str] | None = None) -> int:
    tune_malloc()
    args = build_parser().parse_args(argv)
    if args.data_dir is not None:
        os.environ[DATA_DIR_ENV] = str(args.data_dir.expanduser().resolve())
    try:
        config = load_config(args)
        logging.basicConfig(level=config.server.log_level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if args.list_modules:
            return list_modules(config)
        if args.print_config:
            return print_config(config)
        from ..app import create_app
        from .serve import serve
        app = create_app(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = config.server
    if not server.enable_modules:
        logging.getLogger("greenroom").warning("no modules enabled; use --enable-modules=a,b")
    if server.secure:
        print(f"API key (from {server.api_key_file}): {app.extensions['greenroom.api_key']}", flush=True)
    elif server.listen:
        logging.getLogger("greenroom").warning("--listen without --secure: anyone on the network can use this server")
    if server.listen and "*" not in server.cors_origins:
        print(f"Browser pages may call this server from: {', '.join(server.cors_origins)} (any port). A SillyTavern "
              "opened through a LAN address needs that address in cors_origins in the [server] table of "
              "plugins.toml, e.g. cors_origins = [..., \"http://192.168.1.5:8000\"]", flush=True)
    serve(app, "0.0.0.0" if server.listen else "127.0.0.1", server.port)
    exit_now()


def exit_now() -> NoReturn:
    """Leave at once after a graceful stop: streams are closed, modules unloaded, the socket shut.

    The interpreter's own teardown would garbage-collect the models' millions of objects several
    times over (finalize_modules), which took 10 s and more on a busy machine after "stopped". The
    teardown with the server's daemon threads still alive also aborted now and then with "terminate
    called without an active exception" (seen at the end of the in-process benchmarks; Python 3.11 ends
    daemon threads by unwinding their stacks, which C++ frames may refuse).
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
