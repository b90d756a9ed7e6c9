"""Lazy public names of a subpackage: importing it loads none of its heavy modules."""

import importlib


def lazy_names(package, public):
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package whose names load on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    public : dict
        Public name -> module of the package that defines it.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__, __all__)``, to assign in the package's ``__init__``.
    """
    names = sorted(public)

    def __getattr__(name):
        if name in public:
            return getattr(importlib.import_module(f"{package}.{public[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return names

    return __getattr__, __dir__, names
