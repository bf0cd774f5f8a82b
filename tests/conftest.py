"""Shared test setup: `gpu` tests skip cleanly where CUDA is absent."""

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (no GPU visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors on 2 shared cores: one intra-op thread is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    """All 1797 scikit-learn digits as [N, 1, 8, 8] pixels in [0, 1], shuffled with seed 0."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm], y[perm]


@pytest.fixture(scope="session")
def trained(digits):
    """digits_cnn with noisy neurons (sigma 0.2, noise on at eval), 2 epochs on the first
    1400 digits; returned in eval mode. Tests must not change its weights."""
    import torch.nn.functional as F
    from tgo.models import NeuronSettings, build
    torch.manual_seed(0)
    x, y = digits
    model = build("digits_cnn", 10, timesteps=2, mean=[0.3], std=[0.4],
                  neuron=NeuronSettings(noise_scale=0.2),
                  generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(2):
        for i in range(0, 1400, 64):
            loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL (tests/postgres.py), started on first use, stopped by PID at the
    end; skips where the server binaries are missing (fails with TGO_REQUIRE_POSTGRES=1)."""
    from postgres import start_private
    yield from start_private()
