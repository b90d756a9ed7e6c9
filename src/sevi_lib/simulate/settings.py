"""The simulation's settings: the one place their defaults live, and how a YAML section and flags merge.

:class:`SimulationSettings` holds every value of the workflow's ``simulation:`` section with the
embedded default's values (3000 frames, 40 electrons per shell and frame, 2 threads, the published
camera: image centred on the screen, no stray electrons, no read noise, no hot pixels, the published
spot model); the shells
(R, sigma_R, beta per shell, any number K >= 1 of them) have no default. :func:`check_camera`
checks the lab-camera values (also for the library functions that take them one by one),
:func:`check_spot` the spot model. :func:`resolve_settings` merges a YAML section (the
workflow config, or the section alone, :func:`load_params`) with the values given on the command
line (they win) and checks everything once, naming where a bad value came from.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import yaml

from sevi_lib.core.errors import InputError, SettingsError, SeviError, check_settings
from sevi_lib.core.spots import SpotModel

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
        Poisson mean of electrons per frame, one per shell (one value: the same for every shell,
        so the default 40 serves any number of shells).
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
    centre_offset : list of float
        ``[dx, dz]`` pixels from the screen centre to the image centre (the centre of every
        shell's projection): the image centre is at ``(dx, dz) / 512`` screen units.
    stray_electrons : float
        Poisson mean per frame of stray electrons, uniform on the whole screen ``[-1, 1]^2``;
        they get spots like any electron (``detection_loss`` does not apply to them).
    read_noise : float
        Standard deviation (counts) of the Gaussian read noise added to every pixel of every
        frame before rounding and clipping to [0, 255].
    hot_pixels : int
        Number of hot pixels: distinct positions and levels (uniform in [64, 255] counts) drawn
        once from the seed; a hot pixel's level is added to it in every frame before the noise,
        rounding and clipping.
    gzip_level : int or None
        gzip level of the frames (0-9; every level reads the same). None: 9 (the published
        files) without read noise, 1 with it (noisy frames take ~1.5 s each at level 9 and
        ~20 ms at level 1, for 20 % more space).
    spot : dict
        The camera's spot model: any of the fields of :class:`~sevi_lib.core.spots.SpotModel`
        (``sigma_px``, ``sigma_sd_px``, ``rho_sd``, ``gain`` ``"normal"`` or ``"gamma"``,
        ``gain_mean``, ``gain_cv``); the others keep the published model's values (empty: the
        published model, 7.68 +- 0.512 px, gain Normal(100, 10^2), rho sd 0.1).
    """

    seed: int = 0
    n_frames: int = 3000
    electrons_per_shell: list[float] = (40.0,)
    detection_loss: float = 0.1
    R: list[float] | None = None
    sigma_R: list[float] | None = None
    beta: list[list[float]] | None = None
    chunk: int = 64
    threads: int = 2
    centre_offset: list[float] = (0.0, 0.0)
    stray_electrons: float = 0.0
    read_noise: float = 0.0
    hot_pixels: int = 0
    gzip_level: int | None = None
    spot: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("seed", "n_frames", "chunk", "threads"):
            value = getattr(self, name)
            check_settings([(not isinstance(value, bool) and isinstance(value, (int, np.integer)),
                             f"{name} must be an integer, got {value!r}")])
        check_settings([(getattr(self, name) >= low, f"{name} must be >= {low}, got {getattr(self, name)}")
                        for name, low in (("chunk", 1), ("threads", 1), ("n_frames", 0))])
        check_camera(self.centre_offset, self.stray_electrons, self.read_noise, self.hot_pixels)
        check_gzip_level(self.gzip_level)
        check_spot(self.spot)

    def spot_model(self):
        """The spot model as a checked :class:`~sevi_lib.core.spots.SpotModel`."""
        return check_spot(self.spot)

    def camera(self):
        """The lab-camera values checked and normalised (see :func:`check_camera`)."""
        return check_camera(self.centre_offset, self.stray_electrons, self.read_noise, self.hot_pixels)

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


def _number(value, name):
    """A finite float from a bool-free real number, else InputError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SettingsError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be finite, got {value}")
    return value


def check_camera(centre_offset=(0.0, 0.0), stray_electrons=0.0, read_noise=0.0, hot_pixels=0):
    """Check the lab-camera values of a simulation; InputError naming the bad one.

    Parameters
    ----------
    centre_offset : sequence of two float
        Image centre minus screen centre, pixels ``(dx, dz)``; finite.
    stray_electrons : float
        Poisson mean of stray electrons per frame; finite, >= 0.
    read_noise : float
        Read-noise standard deviation, counts; finite, >= 0.
    hot_pixels : int
        Number of hot pixels, 0 .. 1024**2.

    Returns
    -------
    centre_offset : tuple of float
        ``(dx, dz)`` in pixels.
    stray_electrons, read_noise : float
    hot_pixels : int
    """
    if isinstance(centre_offset, (str, bytes)) or not hasattr(centre_offset, "__len__") or len(centre_offset) != 2:
        raise SettingsError(f"centre_offset must be two numbers [dx, dz] (pixels), got {centre_offset!r}")
    offset = tuple(_number(v, "centre_offset") for v in centre_offset)
    strays = _number(stray_electrons, "stray_electrons")
    noise = _number(read_noise, "read_noise")
    for name, value in (("stray_electrons", strays), ("read_noise", noise)):
        if value < 0:
            raise SettingsError(f"{name} must be >= 0, got {value:g}")
    if isinstance(hot_pixels, (bool, np.bool_)) or not isinstance(hot_pixels, (int, np.integer)):
        raise SettingsError(f"hot_pixels must be an integer, got {hot_pixels!r}")
    if not 0 <= hot_pixels <= 1024 * 1024:
        raise SettingsError(f"hot_pixels must be in [0, 1024**2], got {hot_pixels}")
    return offset, strays, noise, int(hot_pixels)


def check_spot(spot):
    """The spot model of a mapping of SpotModel fields (None or empty: published); InputError naming the bad key.

    Parameters
    ----------
    spot : mapping, SpotModel or None
        Some of the fields of :class:`~sevi_lib.core.spots.SpotModel`, or one.

    Returns
    -------
    sevi_lib.core.spots.SpotModel
    """
    if spot is None:
        return SpotModel()
    if not isinstance(spot, (Mapping, SpotModel)):
        raise SettingsError(f"spot must be a mapping of spot-model values (sigma_px, gain, ...), got {spot!r}")
    try:
        return spot.validate() if isinstance(spot, SpotModel) else SpotModel.from_dict(spot)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc) if str(exc).startswith("spot") else f"spot: {exc}") from None


def check_gzip_level(level):
    """None or an integer 0..9 (the frames' gzip level), else InputError."""
    if level is None:
        return None
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise SettingsError(f"gzip_level must be an integer in [0, 9], got {level!r}")
    return int(level)


def gzip_level_for(level, read_noise):
    """The frames' gzip level: `level`, or when None 9 (published) without read noise and 1 with it."""
    level = check_gzip_level(level)
    if level is not None:
        return level
    return 1 if read_noise > 0 else 9


def load_params(path):
    """The ``simulation`` section of a YAML file (or the whole file if it has no such key).

    Parameters
    ----------
    path : str

    Returns
    -------
    dict
    """
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
        see ``sevi simulate --help``); they win over the section. ``spot`` (a mapping) wins key
        by key: the section's other spot values stay.
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
    if given.get("spot") is not None:
        spot = given.pop("spot")
        base = fields.get("spot") or {}
        if isinstance(base, Mapping) and isinstance(spot, Mapping):
            fields["spot"] = {**base, **spot}
        else:
            fields["spot"] = spot if not isinstance(spot, Mapping) else base
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
