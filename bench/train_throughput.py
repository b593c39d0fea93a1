"""Training throughput (images/s): our loop against the loop users copy and against the compute bound.

- ours:      vaebench.train.train_epoch: the uint8 dataset on the device, batches by index, one generator.
- baseline:  the loop users copy (pytorch/examples vae, torchvision MNIST): a Dataset that turns each
             uint8 image into a PIL image and applies ToTensor, a DataLoader(shuffle=True), `.to(device)`
             and `loss.item()` per batch; dequantized per batch like ours. num_workers 0 (DataLoader's
             default, and the example's on CPU) and 1 (the example's setting on CUDA).
- bound:     vaebench.train.train_step alone on batches already on the device: no shuffling or indexing.
Ours and the bound use Adam as train() builds it (fused); the baselines use Adam as users write it, and
once more with the fused Adam, which isolates the data handling.

Same model (build_model), family, Adam and batch size for all; whole epochs of the train split;
the methods are interleaved round by round (rotating their order), so load from other processes
hits them alike. Reports median and min-max images/s and the ratios of the medians.

    python bench/train_throughput.py [--arch mlp conv] [--rounds 7] [--threads 1 2]
"""

import argparse
import time

import torch
from common import DATA_DIR, print_table, ratio, summary, write_result
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import ToTensor

from vaebench.data import dequantize, load_dataset
from vaebench.models import VAE, build_model, gaussian_kl
from vaebench.train import TrainConfig, make_optimizer, model_config, train_epoch, train_step


class PilImages(Dataset):
    """torchvision's MNIST __getitem__: uint8 array -> PIL image -> transform, one image at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels, self.transform = images, labels, ToTensor()  # [N, C, H, W] uint8

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        a = self.images[i].numpy()  # [C, H, W]
        img = Image.fromarray(a[0], mode="L") if a.shape[0] == 1 else Image.fromarray(a.transpose(1, 2, 0))
        return self.transform(img), int(self.labels[i])  # float32 [C, H, W] = v / 255


def fresh(cfg: TrainConfig, data, fused: bool) -> tuple[VAE, torch.optim.Optimizer]:
    """The model, and Adam as train() builds it (fused) or as users write it (the default implementation)."""
    torch.manual_seed(cfg.seed)
    model = build_model(model_config(cfg, data))
    return model, make_optimizer(model, cfg) if fused else torch.optim.Adam(model.parameters(), lr=cfg.lr)


def baseline_epoch(model: VAE, opt, loader: DataLoader, cfg: TrainConfig) -> float:
    """The loop users copy; dequantization per batch as in ours, so both optimise the same objective."""
    model.train()
    train_loss = 0.0
    for x, _ in loader:  # [B, C, H, W] float32 v/255
        v = (
            (x * 255).round().to(torch.uint8)
        )  # the 8-bit values back, for dequantization and discrete families
        x = dequantize(v, None)
        eps = torch.randn(v.shape[0], cfg.latent_dim)
        params, mu, logvar = model(x, eps)
        loss = (model.family.train_loss(params, x, v) + gaussian_kl(mu, logvar)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        train_loss += loss.item() * v.shape[0]  # as in the example: one host sync per batch
    return train_loss / len(loader.dataset)


def bound_epoch(
    model: VAE, opt, batches: list[torch.Tensor], cfg: TrainConfig, gen: torch.Generator
) -> torch.Tensor:
    """train.train_step only, on prepared uint8 batches of the epoch's sizes."""
    model.train()
    for v in batches:
        loss = train_step(model, opt, v, cfg, gen)
    return loss


def measure(arch: str, family: str, threads: int, rounds: int, data, latent_dim: int) -> dict:
    torch.set_num_threads(threads)
    cfg = TrainConfig(dataset=data.name, loss=family, arch=arch, latent_dim=latent_dim, threads=threads)
    images = data.train_images  # uint8 [N, C, H, W], on the (CPU) device
    n = images.shape[0]
    gen = torch.Generator().manual_seed(0)
    sizes = [min(cfg.batch_size, n - s) for s in range(0, n, cfg.batch_size)]
    prepared = [images[torch.randint(n, (b,), generator=gen)] for b in sizes]
    dataset = PilImages(images, data.train_labels)
    loaders = {
        w: DataLoader(
            dataset, batch_size=cfg.batch_size, shuffle=True, num_workers=w, persistent_workers=w > 0
        )
        for w in (0, 1)
    }
    runs = {  # name: (one epoch, fused Adam as in train())
        "ours": (lambda m, o: train_epoch(m, o, images, cfg, gen).item(), True),
        "baseline_workers0": (lambda m, o: baseline_epoch(m, o, loaders[0], cfg), False),
        "baseline_workers1": (lambda m, o: baseline_epoch(m, o, loaders[1], cfg), False),
        "baseline_workers0_fused_adam": (lambda m, o: baseline_epoch(m, o, loaders[0], cfg), True),
        "bound": (lambda m, o: bound_epoch(m, o, prepared, cfg, gen).item(), True),
        "bound_default_adam": (lambda m, o: bound_epoch(m, o, prepared, cfg, gen).item(), False),
    }
    states = {name: fresh(cfg, data, fused) for name, (_, fused) in runs.items()}
    for name, (run, _) in runs.items():  # warm-up: allocator, kernels, the worker process
        run(*states[name])
    seconds = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            runs[name][0](*states[name])
            seconds[name].append(time.perf_counter() - t0)
    rates = {name: summary([n / s for s in secs]) for name, secs in seconds.items()}
    return {
        "arch": arch,
        "family": family,
        "threads": threads,
        "batch_size": cfg.batch_size,
        "n_images": n,
        "latent_dim": latent_dim,
        "rounds": rounds,
        "images_per_s": rates,
        "ours_over_baseline_workers0": ratio(rates["ours"], rates["baseline_workers0"]),
        "ours_over_baseline_workers1": ratio(rates["ours"], rates["baseline_workers1"]),
        "ours_over_baseline_workers0_fused_adam": ratio(rates["ours"], rates["baseline_workers0_fused_adam"]),
        "ours_over_bound": ratio(rates["ours"], rates["bound"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="+", default=["mlp"])
    p.add_argument("--family", nargs="+", default=["continuous_bernoulli"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--dataset", default="mnist5k")
    args = p.parse_args()
    data = load_dataset(args.dataset, DATA_DIR)
    results = [
        measure(
            arch,
            family,
            threads,
            args.rounds if arch == "mlp" else max(3, args.rounds // 2),
            data,
            args.latent_dim,
        )
        for arch in args.arch
        for family in args.family
        for threads in args.threads
    ]
    rows = []
    for res in results:
        for name, s in res["images_per_s"].items():
            rows.append(
                [
                    res["arch"],
                    res["family"],
                    res["threads"],
                    name,
                    s["median"],
                    f"{s['min']:.0f}-{s['max']:.0f}",
                    ratio(res["images_per_s"]["ours"], s),
                ]
            )
    print_table(
        f"training throughput, {args.dataset}, batch 128, Adam, whole epochs "
        f"({results[0]['n_images']} images), "
        f"{args.rounds} interleaved rounds",
        ["arch", "family", "threads", "loop", "images/s median", "min-max", "ours / this"],
        rows,
    )
    write_result("train_throughput", {"dataset": args.dataset, "results": results})


if __name__ == "__main__":
    main()
