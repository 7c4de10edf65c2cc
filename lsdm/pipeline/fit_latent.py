"""fit_latent: the autoencoder, fitted on the latent pool (paired and unpaired training images)."""

import time

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data.tables import to_tensor
from lsdm.io import read_table, save_checkpoint
from lsdm.evaluation.metrics import mae, mse
from lsdm.models.autoencoder import ConvAutoencoder
from lsdm.data.schemas import IMAGES, LATENT_POOL
from lsdm.tracking import tracked
from lsdm.models.training import seed_everything, batched, train_autoencoder


def run(params: Params) -> None:
    p, device = params.latent, resolve_device(params.base.device)
    images = read_table(paths.IMAGES, IMAGES).set_index("id")
    pool_ids = read_table(paths.LATENT_POOL, LATENT_POOL)["id"]
    train = to_tensor(images.loc[pool_ids]).to(device)
    test = to_tensor(images[images["split"] == "test"]).to(device)
    config = dict(image_size=train.shape[-1], in_channels=train.shape[1], dim=p.dim, channels=p.channels, noise=p.noise)
    seed_everything(p.seed)
    model = ConvAutoencoder(**config).to(device)

    with tracked(paths.live_dir("fit_latent")) as track:
        t0 = time.perf_counter()
        train_autoencoder(model, train, steps=p.steps, batch_size=p.batch_size, lr=p.lr, seed=p.seed, log=track)
        seconds = time.perf_counter() - t0
        rec_train, rec_test = batched(model, train), batched(model, test)
        track.summary["latent"] = {
            "train_mse": mse(rec_train, train),
            "test_mse": mse(rec_test, test),
            "test_mae": mae(rec_test, test),
            "train_seconds": seconds,
            "n_images": len(train),
        }
        save_checkpoint(paths.AUTOENCODER, "conv_ae", config, model.state_dict())
    print(f"fit_latent: {len(train)} images, {p.steps} steps in {seconds:.0f}s, test mse {mse(rec_test, test):.4f}")
