"""One module per DVC stage, each a thin `run(params)` over the library: read inputs, call the
library, write outputs atomically. A module per stage lets dvc.yaml list exactly the code each
stage depends on, so editing one stage's code does not rerun the others."""

# `check` first: it validates params, device and data before DVC deletes any other stage's outputs.
STAGES = (
    "check",
    "prepare",
    "split",
    "fit_latent",
    "encode",
    "pseudo_label",
    "fit_matcher",
    "eval_net",
    "evaluate",
    "report",
)
# The caching contract: these do not depend on which images are paired, so a sweep over the paired
# subset computes them once; every other stage reruns when the pairs change.
SHARED_STAGES = ("prepare", "fit_latent", "encode", "eval_net")
