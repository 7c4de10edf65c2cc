"""Helpers the tests import (the fixtures stay in tests/conftest.py, which imports what they need from here):

- `checkout`: the checkout's root (on sys.path) and the venv's bin;
- `processes`: commands and background process groups, their environment and reaping;
- `repos`: tiny params and throwaway git + DVC repositories, and what `dvc` says about them;
- `docs`: the README's commands and the shipped run's files as committed;
- `weights`: stand-ins for the pretrained networks the metrics load;
- `prefect`: a Prefect server's client and the artifacts of a flow run.

Import them as `support.<module>` (tests/ is on sys.path), never as `tests.support.<module>`: a second
name makes a second module, and `processes.STARTED` must be one list."""
