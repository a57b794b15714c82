"""digitlab's defaults and the environment variables it reads: one light module every layer may import.

Kept free of heavy imports (no NumPy, scikit-learn or PyTorch) so that `digitlab --help` and the
option defaults of every command cost nothing to compute.
"""

from __future__ import annotations

# --- data and runs -------------------------------------------------------------------------------
QUICK_TRAIN = 6000  # --quick: stratified subset sizes
QUICK_TEST = 1000
SMOKE_TRAIN = 500  # --smoke: every step on a tiny stratified subset, to check an install in seconds
SMOKE_TEST = 200
SMOKE_MODELS = ("lr", "knn", "scratch-mlp", "cnn")  # one of each family the steps treat differently
DEFAULT_MODELS = ("lr", "knn", "svm", "mlp", "cnn")  # what `digitlab run` and `compare` train
READERS = ("cnn-hands", "cnn-aug", "ensemble", "cnn-fast", "cnn", "cnn-classic", "svm")  # best reader of pictures first

# --- environment variables --------------------------------------------------------------------------
DATA_ENV = "DIGITLAB_DATA"  # the data cache
HOME_ENV = "DIGITLAB_HOME"  # the folder of your digit store
RUN_ENV = "DIGITLAB_RUN"  # run folder the dashboard opens
RUNS_ENV = "DIGITLAB_RUNS"  # folder holding the run folders
SERVE_ENV = "DIGITLAB_SERVE"  # the ServeRequest as JSON, for each uvicorn worker
TOKEN_ENV = "DIGITLAB_SERVE_TOKEN"  # the bearer token, when not in --token-file

# --- serving -------------------------------------------------------------------------------------------
MAX_PICTURE_BYTES = 20 * 1024 * 1024  # a bigger upload is refused before decoding (20 MiB)
MAX_BATCH = 1024  # images in one request
TIMEOUT_S = 30.0  # seconds a request may take
MAX_TIMEOUT_S = 3600.0  # the longest --timeout: a request that may take longer is a stuck one
MAX_CONNECTIONS = 1000  # open connections per worker; past it idle ones are closed, then 503
HEADER_TIMEOUT_S = 10.0  # a connection must send whole request headers this soon after opening or answering
MAX_IN_FLIGHT = 64  # requests being answered at once per worker; past it 503 with Retry-After
WORKER_MIB = 500  # what one worker holds with the models loaded (measured: ~490 MB with torch and the cnn)
