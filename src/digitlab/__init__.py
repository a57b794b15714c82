"""digitlab: a workbench for handwritten-digit recognition, from raw MNIST files to a tuned,
evaluated and explained model."""

import os as _os

__version__ = "0.1.0"

# OpenMP threads (torch, scikit-learn) spin while they wait for work by default. On a machine another
# job shares, a spinning thread takes the core the working one needs: training the cnn beside one busy
# process took 2.8× as long; with sleeping waits 1.4×, and no slower alone (benchmarks/shared_cpu.py).
# Set before torch or scikit-learn loads OpenMP; a value the user set wins; DIGITLAB_THREADS=off leaves it.
if _os.environ.get("DIGITLAB_THREADS", "").lower() != "off":
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
