"""fit_latent: the autoencoder, fitted on the latent pool (paired and unpaired training images).

The pool's pixels stream from the image table into a uint8 scratch file and training reads each
batch from it (`lsdm.data.pixels.PixelFile`): the stage's memory is one batch and the model, not
the pool (200,000 images of 64x64x3 would be 10 GB as float tensors).
"""

import time

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.pixels import PixelFile, image_batches, image_meta, image_shape
from lsdm.data.schemas import LATENT_POOL
from lsdm.evaluation.metrics import reconstruction_errors
from lsdm.io import read_table, save_checkpoint
from lsdm.models.autoencoder import ConvAutoencoder
from lsdm.models.training import seed_everything, train_autoencoder
from lsdm.tracking import tracked

#: Images a reconstruction pass holds at once: the autoencoder's activations are what a pass holds
#: (~1 MB an image per layer at 64x64 with 32 channels), so this, not the table, bounds its memory.
RECON_ROWS = 128


def run(params: Params) -> None:
    p, device = params.latent, resolve_device(params.base.device)
    meta = image_meta(paths.IMAGES)
    pool_ids = read_table(paths.LATENT_POOL, LATENT_POOL)["id"]
    channels, size, _ = image_shape(meta)
    config = dict(image_size=size, in_channels=channels, dim=p.dim, channels=p.channels, noise=p.noise)
    seed_everything(p.seed)
    model = ConvAutoencoder(**config).to(device)

    with tracked(paths.live_dir("fit_latent")) as track, PixelFile.of(paths.IMAGES, pool_ids, device) as train:
        t0 = time.perf_counter()
        train_autoencoder(model, train, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=p.seed, log=track)
        seconds = time.perf_counter() - t0
        on_train = reconstruction_errors(model, train.batches(RECON_ROWS))
        test_ids = meta.loc[meta["split"] == "test", "id"]
        test = image_batches(paths.IMAGES, test_ids, device, rows=RECON_ROWS)
        on_test = reconstruction_errors(model, (y for _, y in test))
        track.summary["latent"] = {
            "train_mse": on_train["mse"],
            "test_mse": on_test["mse"],
            "test_mae": on_test["mae"],
            "train_seconds": seconds,
            "n_images": len(train),
        }
        save_checkpoint(paths.AUTOENCODER, "conv_ae", config, model.state_dict())
    print(f"fit_latent: {len(train)} images, {p.steps} steps in {seconds:.0f}s, test mse {on_test['mse']:.4f}")
