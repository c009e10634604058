"""Registries of named components with discovery.

One :class:`Registry` per kind of component (datasets, encoders, objectives, methods, scenarios,
interventions, analyses). A component is registered under a name with a one-line description
taken from its docstring, and can be listed with a glob pattern.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "RegistryEntry"]

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered component.

    Attributes:
        name: The name it is registered under.
        obj: The registered class or function.
        description: One-line description.
        config: The structured config (a dataclass) of the option ``<kind>=<name>``, where the
            component's arguments are not its own signature (datasets: ``**kwargs`` of it).
        sources: The data sources (:data:`modalab.data.SOURCES` names) a dataset reads; empty:
            bundled or generated data.
    """

    name: str
    obj: T
    description: str
    config: Any = None
    sources: tuple[str, ...] = ()


class Registry(Generic[T]):
    """A name → component registry.

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"dataset"``).

    Example:
        >>> losses: Registry[object] = Registry("objective")
        >>> @losses.register("l2")
        ... def l2(x):
        ...     '''Squared error.'''
        ...     return x * x
        >>> losses.get("l2")(3)
        9
        >>> losses.names("l*")
        ['l2']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    def register(
        self,
        name: str,
        description: str | None = None,
        *,
        config: Any = None,
        sources: tuple[str, ...] = (),
    ) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``.

        Args:
            name: Unique name.
            description: One-line description; defaults to the docstring's first line.
            config: The option's structured config class (see :class:`RegistryEntry`).
            sources: The data sources a dataset reads.

        Returns:
            The decorator, which returns the object unchanged.
        """

        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"A {self.kind} named {name!r} is already registered.")
            obj = self.prepare(obj)
            doc = description or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[name] = RegistryEntry(name, obj, doc, config, tuple(sources))
            return obj

        return decorator

    def prepare(self, obj: T) -> T:
        """What is registered in place of ``obj`` (``obj`` itself; subclasses may complete it)."""
        return obj

    def get(self, name: str) -> T:
        """Return the component registered as ``name``.

        Raises:
            KeyError: With the list of valid names, if ``name`` is unknown.
        """
        try:
            return self._entries[name].obj
        except KeyError:
            raise KeyError(
                f"Unknown {self.kind} {name!r}; valid names: {', '.join(sorted(self._entries))}."
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a glob ``pattern``."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self, pattern: str = "*") -> list[RegistryEntry[T]]:
        """Sorted entries matching a glob ``pattern``."""
        return [self._entries[n] for n in self.names(pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        """The names in registration order (the order of a default over every entry)."""
        return iter(self._entries)
