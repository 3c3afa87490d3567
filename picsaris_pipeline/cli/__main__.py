"""`python -m picsaris_pipeline.cli`, as the `picsaris` console script."""

from picsaris_pipeline.cli import main

main()
