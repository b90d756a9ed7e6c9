"""The simulation's settings: the one place their defaults live, and how a YAML section and flags merge.

:class:`SimulationSettings` holds every value of the workflow's ``simulation:`` section with the
embedded default's values (3000 frames, 40 electrons per shell and frame, 2 threads); the shells
(R, sigma_R, beta per shell) have no default. :func:`resolve_settings` merges a YAML section (the
workflow config, or the section alone, :func:`load_params`) with the values given on the command
line (they win) and checks everything once, naming where a bad value came from.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from sevi_lib.core.errors import InputError, SeviError

#: Fields given once per shell.
PER_SHELL = ("R", "sigma_R", "beta")


@dataclass(frozen=True)
class SimulationSettings:
    """Settings of ``sevi simulate`` (the workflow's ``simulation:`` section).

    Attributes
    ----------
    seed : int
        Random seed, 0 <= seed < 2**32.
    n_frames : int
        Number of frames.
    electrons_per_shell : list of float
        Poisson mean of electrons per frame, one per shell (one value: the same for every shell).
    detection_loss : float
        Probability that an electron is not detected.
    R, sigma_R : list of float or None
        Shell radii and radial standard deviations (screen units), one per shell.
    beta : list of list of float or None
        beta_2, beta_4, ... of each shell.
    chunk : int
        Frames rendered and written at a time (memory only; the output does not depend on it).
    threads : int
        gzip compression threads (the workflow also gives numba as many).
    """

    seed: int = 0
    n_frames: int = 3000
    electrons_per_shell: list[float] = (40.0, 40.0)
    detection_loss: float = 0.1
    R: list[float] | None = None
    sigma_R: list[float] | None = None
    beta: list[list[float]] | None = None
    chunk: int = 64
    threads: int = 2

    def __post_init__(self):
        for name in ("seed", "n_frames", "chunk", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(f"{name} must be an integer, got {value!r}")
        for name, low in (("chunk", 1), ("threads", 1), ("n_frames", 0)):
            if getattr(self, name) < low:
                raise InputError(f"{name} must be >= {low}, got {getattr(self, name)}")

    def shells(self):
        """The shells as :class:`~sevi_lib.core.shells.Shells` (sorted by radius, checked)."""
        missing = [k for k in PER_SHELL if getattr(self, k) is None]
        if len(missing) == len(PER_SHELL):
            raise InputError("no shells given: use --params YAML (simulation: shells: ...) or --R, --sigma-R and --beta")
        n = max(len(getattr(self, k)) for k in PER_SHELL if getattr(self, k) is not None)
        for j in range(n):
            lacking = [k for k in PER_SHELL if getattr(self, k) is None or j >= len(getattr(self, k))]
            if lacking:
                raise InputError(f"shell {j} lacks {', '.join(lacking)}")
        from sevi_lib.core.shells import (
            Shells,  # numba (angular): only when shells are built
        )

        return Shells.from_config([{k: getattr(self, k)[j] for k in PER_SHELL} for j in range(n)])

    def electron_means(self, n_shells):
        """electrons_per_shell as float64 (n_shells,) (one value repeats); InputError if not numbers."""
        try:
            means = np.atleast_1d(np.asarray(self.electrons_per_shell, dtype=np.float64))
            float(self.detection_loss)
        except (TypeError, ValueError):
            raise InputError("electrons_per_shell and detection_loss must be numbers") from None
        return np.repeat(means, n_shells) if len(means) == 1 else means


def load_params(path):
    """The ``simulation`` section of a YAML file (or the whole file if it has no such key).

    Parameters
    ----------
    path : str

    Returns
    -------
    dict
    """
    import yaml

    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(doc, dict) and "simulation" in doc:
        doc = doc["simulation"]
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a mapping with simulation parameters ('simulation:' section)")
    return doc


def _numbers(values, flag):
    """Per-shell numbers from the command line: one number per word, or one JSON list."""
    if len(values) == 1 and str(values[0]).lstrip().startswith("["):
        try:
            return [float(v) for v in json.loads(values[0])]
        except (ValueError, TypeError):
            raise InputError(f"{flag}: {values[0]!r} is not a JSON list of numbers") from None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise InputError(f"{flag}: {' '.join(map(str, values))!r} are not numbers") from None


def _betas(values):
    """beta's from the command line: one comma-separated list per shell, or one JSON list of lists."""
    if len(values) == 1 and str(values[0]).lstrip().startswith("[["):
        try:
            return [[float(b) for b in shell] for shell in json.loads(values[0])]
        except (ValueError, TypeError):
            raise InputError(f"--beta: {values[0]!r} is not a JSON list of lists of numbers") from None
    out = []
    for j, text in enumerate(values):
        try:
            out.append([float(v) for v in str(text).split(",") if v.strip()])
        except ValueError:
            raise InputError(f"--beta: shell {j}: '{text}' is not a comma-separated list of numbers") from None
    return out


def _section_fields(section, where):
    """Fields of SimulationSettings from a YAML section (its ``shells`` list split per field)."""
    names = {f.name for f in dataclasses.fields(SimulationSettings)} - set(PER_SHELL)
    unknown = sorted(set(section) - names - {"shells"})
    if unknown:
        raise InputError(f"{where}: unknown simulation setting(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(names | {'shells'}))})")
    out = {k: v for k, v in section.items() if k != "shells" and v is not None}
    shells = section.get("shells")
    if shells is not None:
        if not isinstance(shells, list) or not all(isinstance(s, dict) for s in shells):
            raise InputError(f"{where}: 'shells' must be a list of mappings with R, sigma_R and beta")
        for j, s in enumerate(shells):
            missing = [k for k in PER_SHELL if k not in s]
            if missing:
                raise InputError(f"{where}: shell {j} lacks {', '.join(missing)}")
        for k in PER_SHELL:
            out[k] = [s[k] for s in shells]
    return out


def resolve_settings(section=None, given=None, where=None):
    """Merge a YAML section and command-line values into checked settings and shells.

    Parameters
    ----------
    section : dict, optional
        The ``simulation:`` section (:func:`load_params`).
    given : dict, optional
        Values from the command line (field name -> value; per-shell fields as lists of words,
        see ``sevi simulate --help``); they win over the section.
    where : str, optional
        Where the section came from (named in errors; default ``"flags"``).

    Returns
    -------
    settings : SimulationSettings
    shells : sevi_lib.core.shells.Shells
    """
    where = where or "flags"
    fields = _section_fields(section or {}, where)
    given = dict(given or {})
    n_shells = len(fields.get("R") or fields.get("sigma_R") or fields.get("beta") or [])
    for key in PER_SHELL:
        if given.get(key) is None:
            continue
        flag = f"--{key.replace('_', '-')}"
        values = _betas(given.pop(key)) if key == "beta" else _numbers(given.pop(key), flag)
        if n_shells and len(values) != n_shells:
            raise InputError(f"{flag}: {len(values)} values given for {n_shells} shells")
        n_shells = n_shells or len(values)
        fields[key] = values
    if given.get("electrons_per_shell") is not None:
        given["electrons_per_shell"] = _numbers(given["electrons_per_shell"], "--electrons-per-shell")
    fields.update({k: v for k, v in given.items() if v is not None})
    try:
        settings = SimulationSettings(**fields)
        shells = settings.shells()
    except SeviError as exc:  # InputError or UnphysicalError: name the source
        raise type(exc)(f"{where}: {exc}") from None
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from None
    return settings, shells
