"""Models by name, data sets by name, deterministic splits, clear errors."""

import pytest
import torch

from tgo import data
from tgo.config import ModelName
from tgo.models import INPUT_SHAPES, NeuronSettings, build
from tgo.neurons import noisy_nodes, recording


@pytest.mark.parametrize("name", ["digits_cnn", "mnist_cnn", "vgg11", "wrn16"])
def test_models_build_and_give_logits(name):
    shape = INPUT_SHAPES[ModelName(name)]
    model = build(name, 10, 2, [0.5] * shape[0], [0.25] * shape[0], NeuronSettings(noise_scale=0.1))
    with recording(model) as potentials:
        out = model(torch.rand(2, *shape))
    assert out.shape == (2, 10)
    assert len(potentials) == len(noisy_nodes(model)) > 0
    assert all(h.shape[0] == 2 for h in potentials)   # T = 2


def test_forward_resets_state_so_repeated_calls_agree():
    model = build("digits_cnn", 10, 4, [0.3], [0.4]).eval()
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model(x), model(x))


def test_timesteps_change_the_simulation_length():
    for t in (1, 3):
        model = build("digits_cnn", 10, t, [0.3], [0.4])
        with recording(model) as potentials:
            model(torch.rand(2, 1, 8, 8))
        assert potentials[0].shape[0] == t


@pytest.mark.parametrize("kwargs, field", [
    (dict(name="resnet"), "model"),
    (dict(timesteps=0), "timesteps"),
    (dict(mean=[0.1, 0.2]), "mean"),
])
def test_bad_model_arguments(kwargs, field):
    args = dict(name="digits_cnn", num_classes=10, timesteps=2, mean=[0.3], std=[0.4]) | kwargs
    with pytest.raises(ValueError, match=field):
        build(**args)


def test_digits_split_is_deterministic_disjoint_and_stratified():
    a, b, c = data.load("digits", seed=0), data.load("digits", seed=0), data.load("digits", seed=1)
    assert a.train.indices == b.train.indices and a.test.indices == b.test.indices
    assert a.test.indices != c.test.indices
    sets = [set(a.train.indices), set(a.val.indices), set(a.test.indices)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sum(map(len, sets)) == 1797
    x, y = a.test[0]
    assert x.shape == (1, 8, 8) and 0.0 <= x.min() and x.max() <= 1.0
    labels = torch.stack([a.test[i][1] for i in range(len(a.test))])
    assert torch.bincount(labels).min() >= 30     # every class present, about 36 each


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_missing_torchvision_files_name_folder_and_option(tmp_path, name):
    with pytest.raises(FileNotFoundError) as err:
        data.load(name, data_dir=str(tmp_path / "nowhere"))
    assert "nowhere" in str(err.value) and "download" in str(err.value)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="dataset: expected one of 'digits'"):
        data.load("imagenet")
