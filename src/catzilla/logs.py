"""Logging: the ``catzilla.error`` and ``catzilla.access`` loggers, configured
as uvicorn does (``--log-level``, ``--log-config`` with a dictConfig JSON or
YAML file, or a ``logging.config.fileConfig`` INI file).

Access log lines are formatted in C (csrc/server/cz_accesslog.h) and reach
Python in batches (64 KiB, or what gathered within 250 ms). When the
``catzilla.access`` logger would only put them on one stream unchanged (the
default: a handler formatting ``%(message)s``), a batch is written to it at
once, so a request costs no Python call; any other configuration gets one
record per line. With ``access_log_format=callable``, the callable gets each
request's fields as a dict and one record is logged per request: flexible,
and slower.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

ERROR_LOGGER = "catzilla.error"
ACCESS_LOGGER = "catzilla.access"
ACCESS_FORMATS = ("common", "json")
LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}

# The default configuration (as uvicorn's LOGGING_CONFIG): errors and other
# messages of the "catzilla" loggers to stderr, the access log to stdout.
LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"format": "%(levelname)s:     %(message)s"},
        "access": {"format": "%(message)s"},
    },
    "handlers": {
        "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
        "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "catzilla": {"handlers": ["default"], "level": "INFO", "propagate": False},
        ACCESS_LOGGER: {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


def check_level(level: str | int | None) -> int | None:
    if level is None:
        return None
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.lower() in LOG_LEVELS:
        return LOG_LEVELS[level.lower()]
    raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)} (or a number), got {level!r}")


def load_config(log_config: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any] | str:
    """A dictConfig dict from a dict, a .json or .yaml/.yml file; an INI path is returned as is (fileConfig)."""
    if isinstance(log_config, dict):
        return log_config
    path = os.fspath(log_config)
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
    elif path.endswith((".yaml", ".yml")):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError as exc:  # pragma: no cover - PyYAML is optional
            raise RuntimeError(f"log_config {path!r}: YAML needs PyYAML (pip install pyyaml)") from exc
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f)
    else:
        if not os.path.exists(path):
            raise FileNotFoundError(f"log_config {path!r} does not exist")
        return path
    if not isinstance(loaded, dict):
        raise ValueError(f"log_config {path!r} must hold a dictConfig mapping, got {type(loaded).__name__}")
    return loaded


def configure_logging(
    log_level: str | int | None = None,
    log_config: str | os.PathLike[str] | dict[str, Any] | None = None,
    access_log: bool = True,
) -> None:
    """Configure logging as ``catzilla run`` does: LOGGING_CONFIG, then
    ``log_config`` over it, then ``log_level`` on the catzilla loggers;
    ``access_log=False`` silences ``catzilla.access``."""
    import logging.config  # 1 MiB of RSS (socketserver, pickle): only for apps that configure logging

    logging.config.dictConfig(LOGGING_CONFIG)
    if log_config is not None:
        config = load_config(log_config)
        if isinstance(config, dict):
            logging.config.dictConfig(config)
        else:
            logging.config.fileConfig(config, disable_existing_loggers=False)
    level = check_level(log_level)
    if level is not None:
        for name in ("catzilla", ERROR_LOGGER, ACCESS_LOGGER):
            logging.getLogger(name).setLevel(level)
    if not access_log:
        access = logging.getLogger(ACCESS_LOGGER)
        access.handlers = []
        access.propagate = False


def ensure_access_handler() -> None:
    """An access log nobody listens to is useless: when neither
    ``catzilla.access`` nor its ancestors have a handler, lines go to stdout."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if logger.hasHandlers():
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


class AccessSink:
    """What the C core calls with a batch of access log lines ('\\n'-terminated)
    and their count.

    When the lines would go, unchanged, to one stream (the default: one
    ``StreamHandler`` or ``FileHandler`` formatting ``%(message)s``, no filter,
    nothing propagated to other handlers), the batch is written to that stream
    as it is, under the handler's lock: the same bytes as through records,
    without a record per line. Any other configuration gets one record per
    line (``record.access_lines`` is 1)."""

    def __init__(self, formatter: Callable[[dict[str, Any]], str] | None = None) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self.formatter = formatter

    def direct_handler(self) -> logging.StreamHandler[Any] | None:
        """The one handler the lines reach, when writing to its stream is what it would do."""
        logger = self.logger
        if logger.filters or len(logger.handlers) != 1:
            return None
        handler = logger.handlers[0]
        if type(handler) not in (logging.StreamHandler, logging.FileHandler) or handler.filters:
            return None
        assert isinstance(handler, logging.StreamHandler)
        fmt = handler.formatter
        if (
            type(fmt) is not logging.Formatter
            or type(fmt._style) is not logging.PercentStyle
            or fmt._fmt != "%(message)s"
            or handler.terminator != "\n"
            or handler.level > logging.INFO
            or getattr(handler, "stream", None) is None
        ):
            return None
        parent = logger.parent if logger.propagate else None
        while parent is not None:  # a record would reach these handlers too
            if parent.handlers:
                return None
            parent = parent.parent if parent.propagate else None
        return handler

    def __call__(self, batch: str, lines: int = -1) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        if lines < 0:
            lines = batch.count("\n")
        if self.formatter is None:
            handler = self.direct_handler()
            if handler is not None:
                with handler.lock or contextlib.nullcontext():
                    try:
                        handler.stream.write(batch)
                        handler.flush()
                    except Exception:
                        handler.handleError(logger.makeRecord(logger.name, logging.INFO, __file__, 0, batch, (), None))
                return
            # one record per line, each line its message with no arguments (not %-formatted):
            # a formatter's prefix, a filter, a JSON formatter see every request
            for line in batch.splitlines():
                logger.info(line, extra={"access_lines": 1})
            return
        for line in batch.splitlines():
            try:
                fields = json.loads(line)
                text = self.formatter(fields)
            except Exception:
                logging.getLogger(ERROR_LOGGER).exception("access_log_format failed")
                continue
            logger.info("%s", text, extra={"access_lines": 1, "access": fields})
