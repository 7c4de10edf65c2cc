"""evaluate: one-step samples for every test condition, judged by the evaluation net.

Metrics go to results/evaluate/metrics.json under `eval.*` (DVC metrics, `dvc exp show`);
the sample grid (one row per class) to results/evaluate/samples.png.
"""

import torch
from torchvision.utils import save_image

from lsdm import paths
from lsdm.config import Params, resolve_device
from lsdm.data import labels_tensor, to_tensor
from lsdm.generate import LSDMSampler, fixed_noise, sample
from lsdm.io import atomic_dir, read_table, write_json
from lsdm.metrics import fid, label_accuracy, mae, mse
from lsdm.models import load
from lsdm.schemas import IMAGES
from lsdm.tasks import TASKS
from lsdm.train import batched, timed


def run(params: Params) -> None:
    p, device, task = params.evaluate, resolve_device(params.base.device), TASKS[params.task]
    images = read_table(paths.IMAGES, IMAGES)
    test, train = images[images["split"] == "test"], images[images["split"] == "train"]
    y_test, labels = to_tensor(test).to(device), labels_tensor(test).to(device)
    sampler, evalnet = LSDMSampler.from_pipeline(device), load(paths.EVALNET, device)
    n_classes = evalnet.head.out_features

    cond = task.conditions(y_test, labels).to(device)
    eta = fixed_noise(len(cond), sampler.noise_dim, p.seed, device)
    fake = sample(sampler, cond, eta, p.batch_size)
    real_feats = batched(evalnet.features, y_test).cpu()
    fake_feats = batched(evalnet.features, fake).cpu()
    train_feats = batched(evalnet.features, to_tensor(train.sample(len(test), random_state=p.seed)).to(device)).cpu()
    acc, acc_per_class = label_accuracy(evalnet.head(fake_feats.to(device)).argmax(1), labels, n_classes)
    real_acc, _ = label_accuracy(evalnet.head(real_feats.to(device)).argmax(1), labels, n_classes)
    rec = batched(sampler.autoencoder, y_test)

    bs = min(p.batch_size, len(cond))
    _, seconds = timed(lambda: sampler(cond[:bs], eta[:bs]), device)
    metrics = {
        "eval": {
            "label_accuracy": acc,
            "label_accuracy_per_class": acc_per_class,
            "evalnet_accuracy_real_test": real_acc,
            "fid_evalnet": fid(real_feats.numpy(), fake_feats.numpy()),
            "fid_evalnet_train_vs_test": fid(real_feats.numpy(), train_feats.numpy()),
            "recon_mse_test": mse(rec, y_test),
            "recon_mae_test": mae(rec, y_test),
            "throughput_images_per_s": bs / seconds,
            "throughput_batch_size": bs,
            "device": device.type,
            "n_samples": len(fake),
        }
    }
    grid_cond = torch.arange(n_classes, device=device).repeat_interleave(p.grid_per_class)
    grid = sample(sampler, grid_cond, fixed_noise(len(grid_cond), sampler.noise_dim, p.seed + 1, device))
    with atomic_dir(paths.EVAL_DIR) as out:
        write_json(metrics, out / paths.EVAL_METRICS.name)
        save_image(grid, out / paths.SAMPLES.name, nrow=p.grid_per_class, padding=2, pad_value=1.0)
    e = metrics["eval"]
    print(f"evaluate: label accuracy {acc:.3f} (real {real_acc:.3f}), FID(evalnet) {e['fid_evalnet']:.2f}")
