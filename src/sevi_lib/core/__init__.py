"""Foundations every stage uses; imports nothing above itself.

Modules
-------
``errors``    ``SeviError``, ``InputError``, ``UnphysicalError`` (one-line user errors, exit 2)
``geometry``  screen and pixel geometry: ``N_PIX``, ``PIX_PER_UNIT``, ``screen_to_pixel``,
              ``pixel_to_screen``, ``pixel_centres`` (the one pixel-centre formula)
``angular``   Legendre densities: ``legendre_even``, ``min_density``, ``check_physical``,
              ``distance_weights``
``shells``    ``Shells`` (R, sigma_R, beta per shell, checked)
``score``     the grader's per-shell distance: ``shell_distance``, ``check_answer``, ``score``
``io``        HDF5 layouts, ``FrameReader`` / ``FrameWriter``, atomic writes (``atomic_path``,
              ``write_h5``, ``write_answer``), readers that validate what they read
              (``read_truth``, ``read_answer``, ``read_detected``, ``read_map``), and the checks
              every command makes before its work (``check_input``, ``check_outputs``)
``maps``      the one count-map binner (``count_map``), ``fold`` / ``unfold``, ``radial_profile``

Nothing is imported here; import the module you need.
"""
