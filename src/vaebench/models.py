"""VAE models: an encoder to a diagonal Gaussian posterior, a decoder to an output family's parameters.

Two architectures, both built from the dataset's own C x H x W (so D is never changed by padding):
- `mlp`: the 784-400-z network most users copy (hidden width configurable);
- `conv`: in the spirit of the seed's experiment: 16/32/128-channel conv stages with 2x2
  max-pooling, mirrored by bilinear upsampling and transposed convolutions. On CUDA the upsampling
  takes channels-last input (BilinearUpsample), the layout whose kernel stays fast at the hundreds of
  thousands of rows an evaluation decodes at once.
"""

import io
import math
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from vaebench.errors import CheckpointError, unknown_name
from vaebench.families import OutputFamily, make_family
from vaebench.settings import ARCHITECTURES
from vaebench.utils import atomic_write

CONV_CHANNELS = (16, 32, 128)


@dataclass
class ModelConfig:
    arch: str
    channels: int
    height: int
    width: int
    latent_dim: int
    family: str
    family_options: dict[str, float] = field(default_factory=dict)
    hidden: int = 400

    @property
    def dims(self) -> int:
        return self.channels * self.height * self.width


def _mlp_coders(cfg: ModelConfig, n_out: int) -> tuple[nn.Module, nn.Module]:
    encoder = nn.Sequential(
        nn.Flatten(), nn.Linear(cfg.dims, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 2 * cfg.latent_dim)
    )
    decoder = nn.Sequential(
        nn.Linear(cfg.latent_dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, n_out * cfg.dims)
    )
    return encoder, decoder


def wants_channels_last(x: torch.Tensor) -> bool:
    """Whether the upsampling should see `x` channels-last: on CUDA, whose NCHW bilinear kernel runs one
    thread per output pixel and loops over N x C inside it, so it crawls when N is large. The CPU keeps
    NCHW, so its numbers stay what they were."""
    return x.is_cuda


class BilinearUpsample(nn.Upsample):
    """nn.Upsample(mode="bilinear") that hands the kernel channels-last input where wants_channels_last says
    so; no parameters, so checkpoints do not change."""

    def __init__(self, size: tuple[int, int]):
        super().__init__(size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if wants_channels_last(x):
            x = x.contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def _conv_coders(cfg: ModelConfig, n_out: int) -> tuple[nn.Module, nn.Module]:
    sizes = [(cfg.height, cfg.width)]  # spatial size before each pooling stage; ceil keeps odd edges
    for _ in CONV_CHANNELS:
        h, w = sizes[-1]
        sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
    c_in, enc = cfg.channels, []
    for c in CONV_CHANNELS:
        enc += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        c_in = c
    h3, w3 = sizes[-1]
    encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(CONV_CHANNELS[-1] * h3 * w3, 2 * cfg.latent_dim))

    dec: list[nn.Module] = [
        nn.Linear(cfg.latent_dim, CONV_CHANNELS[-1] * h3 * w3),
        nn.ReLU(),
        nn.Unflatten(1, (CONV_CHANNELS[-1], h3, w3)),
    ]
    outs = [*reversed(CONV_CHANNELS[:-1]), n_out * cfg.channels]  # 32, 16, P*C
    for i, c_out in enumerate(outs):
        dec += [
            BilinearUpsample(size=sizes[-2 - i]),
            nn.ConvTranspose2d(c_in, c_out, 3, padding=1),
        ]
        if i < len(outs) - 1:
            dec.append(nn.ReLU())
        c_in = c_out
    return encoder, nn.Sequential(*dec)


class VAE(nn.Module):
    """q(z|x) = N(mu(x), diag exp(logvar(x))), p(z) = N(0, I), p(x|z) from `family`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.arch not in ARCHITECTURES:
            raise unknown_name("architecture", cfg.arch, ARCHITECTURES)
        self.config = cfg
        self.family: OutputFamily = make_family(cfg.family, **cfg.family_options)
        coders = _mlp_coders if cfg.arch == "mlp" else _conv_coders
        self.encoder, self.decoder = coders(cfg, self.family.n_params)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)  # [B, 2Z]
        mu, logvar = h.chunk(2, dim=1)  # [B, Z] each
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        out = self.decoder(z).contiguous()  # mlp: [B, P*D]; conv: [B, P*C, H, W], channels-last on CUDA
        return out.view(z.shape[0], self.family.n_params, cfg.channels, cfg.height, cfg.width)

    def forward(self, x: torch.Tensor, eps: torch.Tensor):
        """One reparameterised sample: decoder params [B, P, C, H, W] and the posterior mu, logvar [B, Z]."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image, in nats: [B]."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def build_model(cfg: ModelConfig) -> VAE:
    return VAE(cfg)


def save_torch(path: str | Path, payload: dict) -> Path:
    """torch.save `payload` atomically. Serialised in memory first: torch's own file writer reports a full
    disk as an obscure RuntimeError, a plain write as the OSError it is (which atomic_write names)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def save_model(model: VAE, path: str | Path) -> Path:
    """Save config + weights; `load_model` rebuilds it with torch.load(weights_only=True)."""
    return save_torch(path, {"config": asdict(model.config), "state_dict": model.state_dict()})


def load_model(path: str | Path, device: torch.device | str = "cpu") -> VAE:
    path = Path(path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        model = build_model(ModelConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except FileNotFoundError:
        raise CheckpointError(f"model file {path} does not exist: train the run first") from None
    except (RuntimeError, KeyError, TypeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"cannot load model file {path} (truncated or corrupt?): {first}") from None
    return model.to(device)
