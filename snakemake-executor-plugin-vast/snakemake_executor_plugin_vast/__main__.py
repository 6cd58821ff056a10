"""``python -m snakemake_executor_plugin_vast status|cleanup`` (the ``snakemake-vast`` command)."""

import sys

from snakemake_executor_plugin_vast.admin import main

sys.exit(main())
