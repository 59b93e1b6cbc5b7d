"""The hookspecs: what a plugin can contribute to amk. Each hook receives a ``register`` callback.

Every hook is called once per plugin; a plugin calls ``register(cls)`` for each implementation it
provides. An implementation class has a ``name`` (what config files select), an attrs ``Options`` class
(its config section is structured into it) and, where it needs optional packages, ``requires``
(module -> amk extra that installs it). Built-ins are registered through these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable

from amk.core.markers import hookspec

Register = Callable[[type], None]


@hookspec
def register_stores(register: Register) -> None:
    """Register corpus store classes (subclasses of :class:`amk.core.store.Store`).

    :param register: call it with each store class this plugin provides.
    :return: nothing; every plugin's implementation is called.

    Implement it in a plugin that keeps records somewhere amk does not (a team database, an object store).
    """


@hookspec
def register_featurizers(register: Register) -> None:
    """Register featurizer classes (subclasses of :class:`amk.core.featurizer.Featurizer`).

    :param register: call it with each featurizer class this plugin provides.
    :return: nothing; every plugin's implementation is called.

    Implement it in a plugin whose kernels have knobs or shapes the built-in featurizers encode poorly.
    """


@hookspec
def register_rankers(register: Register) -> None:
    """Register ranker classes (subclasses of :class:`amk.core.ranker.Ranker`).

    :param register: call it with each ranker class this plugin provides.
    :return: nothing; every plugin's implementation is called.

    Implement it in a plugin that brings a team's own learned model of kernel performance.
    """


@hookspec
def register_backends(register: Register) -> None:
    """Register kernel backend classes (subclasses of :class:`amk.core.backend.Backend`).

    :param register: call it with each backend class this plugin provides.
    :return: nothing; every plugin's implementation is called.

    Implement it in a plugin that builds and measures kernels amk cannot (a Triton kernel, a remote farm).
    """

