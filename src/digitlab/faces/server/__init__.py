"""The HTTP face: `digitlab serve` (FastAPI, run by uvicorn)."""
