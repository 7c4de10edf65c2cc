"""Prefect flows over the DVC pipeline (flow `lsdm`; deployments in prefect.yaml)."""
