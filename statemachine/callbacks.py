"""Kept for imports written before ``statemachine.handlers`` existed: the
helpers that build and check state handlers now live there."""

from __future__ import annotations

from .handlers import callback_factory, check_handler

__all__ = ["callback_factory", "check_handler"]
