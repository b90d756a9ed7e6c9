"""What a run did and found, on one page (the workflow's ``report`` rule).

Modules
-------
``markdown``  ``build_report`` / ``write_report``: the whole ``results/report.md`` from the
              paths of a run's outputs (``sevi report`` only parses and calls it)
``tables``    pure Markdown table builders: ``markdown_table``, ``answers_table``,
              ``training_table``, ``timing_table``
``plots``     matplotlib figures: ``fit_report`` (the fit's PNG), ``save_figure``

Nothing is imported here, so the command line does not pay for matplotlib unless it plots.
"""
