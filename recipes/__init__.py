"""Multi-stage pipelines built from the bridge package: ``python -m bridge run <recipe>``."""
