"""Maximum-likelihood fit of the projected shell model (the workflow's ``fit`` rule).

The expected screen density of electrons is

    lambda(x, z) = sum_j sum_{l=0}^{N} a_lj F_2l(x - x0, z - z0; R_j, sigma_j) + b,

(:mod:`sevi_lib.fit.projection`), with a_0j = n_j / 2 (n_j the expected number of electrons of
shell j), a_lj = n_j beta_2l,j, the image centre (x0, z0) (fitted, or fixed) and a uniform
background b over the screen (reported as 4 b stray electrons). The number of shells is found
from the radial profile (:mod:`sevi_lib.fit.search`) unless given. Three data kinds are fitted with the
same model:

``unbinned``
    electron positions (extended Poisson likelihood ``sum_e log lambda(x_e) - sum_j n_j``);
``binned``
    a count map in the ``numpy.histogram2d`` convention (Poisson over pixels; each pixel's
    expectation integrates lambda with 2 x 2 Gauss points);
``binned`` on an intensity image
    an accumulated camera image (counts per electron g, gain spread cv, read noise): the image
    divided by its dispersion phi = g (1 + cv^2), estimated from the fit's residuals, is fitted
    as counts of effective electrons (Poisson quasi-likelihood; :mod:`sevi_lib.fit.dispersion`);
``sum``
    the sum of raw camera frames (expected sum = pixel expectations convolved with the mean
    rendered spot; weighted least squares with the compound-Poisson variance).

For fixed geometry the likelihood is concave in the a's (lambda is linear in them). The fit takes
joint Fisher-scoring steps in all parameters (exact Hessian for the a-block), solves each step
as a small quadratic programme that keeps every shell's angular density non-negative
(I_j(c) >= 0 on a grid of c plus the exact minimisers found by
:func:`sevi_lib.core.angular.min_density`, added as cutting planes), and backtracks on the true
objective. Start values come from the data: the most prominent peaks of the radial profile.
Standard errors come from the observed information (second derivatives included).

Modules
-------
``settings``    :class:`FitSettings` (the defaults of every fit value), ``METHODS``
``unbinned``    :func:`fit_electrons`
``binned``      :func:`fit_count_map`, ``check_map``
``dispersion``  :func:`fit_intensity_map` (quasi-likelihood of an intensity image), ``variance_fit``,
                ``is_intensity``
``framesum``    :func:`fit_frame_sum`, ``mean_spot`` / ``SpotKernel``, the FFT convolver
``files``       :func:`fit_file`: read an input file, fit, write Answer and sidecar (``sevi fit`` draws the plot)
``result``      :class:`FitResult`, ``known_c_floor``, the delta-method covariance
``optimise``    the constrained Fisher-scoring ascent (``maximise``, ``qp_step``) and ``fit_poisson``
``start``       start values (``initial_geometry``, ``start_theta``, ``table_step``, ``shell_geometry``,
                ``fit_with_search``)
``search``      ``find_shells``: significant peaks of the radial profile (the number of shells)
``spectrum``    :func:`~sevi_lib.fit.spectrum.spectrum`: I(R), beta_2(R), beta_4(R) by rBasex about the
                fitted centre, Poisson-bootstrap errors (``sevi spectrum``; ``files.spectrum_file``)
``centre``      the image centre: start value, Newton steps, why its covariance is its own block
``points``      ``PointSet`` (evaluation points; builds the kernels' workspace), ``pixel_nodes``
``layout``      ``ParamLayout``: slices of the parameter vector (the one place of its arithmetic)
``_kernels``    numba kernels (likelihood, Jacobian, curvature) over one ``Workspace`` namedtuple
``projection``  the projected basis F_2l and its radial spline tables

Public API (imported lazily, so ``import sevi_lib.fit`` stays light): :func:`fit_electrons`,
:func:`fit_count_map`, :func:`fit_intensity_map`, :func:`fit_frame_sum`, :func:`fit_file`, :class:`FitResult`,
:class:`FitSettings`, ``METHODS``, :func:`mean_spot`.
"""

from sevi_lib._lazy import lazy_names

_PUBLIC = {
    "fit_electrons": "unbinned",
    "fit_count_map": "binned",
    "fit_intensity_map": "dispersion",
    "fit_frame_sum": "framesum",
    "mean_spot": "framesum",
    "SpotKernel": "framesum",
    "fit_file": "files",
    "FitResult": "result",
    "known_c_floor": "result",
    "FitSettings": "settings",
    "METHODS": "settings",
}


__getattr__, __dir__, __all__ = lazy_names(__name__, _PUBLIC)
