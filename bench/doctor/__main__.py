"""python -m bench.doctor [--device cuda] ...: the same as `diffbench doctor`."""

import sys

from bench.cli import main

sys.exit(main(["doctor", *sys.argv[1:]]))
