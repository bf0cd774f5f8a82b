"""``NoisyLIFNode``: spikingjelly's LIF node with Gaussian membrane noise (the NLIF of TGO)."""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron

from tgo.config import Surrogate
from tgo.neurons import surrogates
from tgo.neurons.functional import LIFParams, noisy_lif_multi_step

__all__ = ["NoisyLIFNode"]


class NoisyLIFNode(neuron.LIFNode):
    r"""LIF neuron that fires with probability Phi((H - V_th) / sigma).

    Spike = Heaviside(H[t] + xi[t] - V_th) with xi ~ N(0, sigma^2) drawn fresh per neuron
    and step (see :mod:`tgo.neurons.functional` for the equations). With
    ``noise_scale=0`` its spikes, potentials and gradients equal spikingjelly's
    ``LIFNode`` with the same parameters, in single- and multi-step mode.

    Args:
        tau: membrane time constant in steps (> 1; an int is accepted).
        v_threshold: firing threshold V_th.
        v_reset: hard-reset potential; None for a soft reset (subtract V_th).
        noise_scale: sigma >= 0, in the units of V_th.
        surrogate: ``sigmoid`` | ``atan`` | ``triangle`` | ``erf``; None picks ``erf`` of
            std sqrt(sigma^2 + S0^2) (see :mod:`tgo.neurons.surrogates`) when sigma > 0 and
            spikingjelly's ``Sigmoid(alpha=4)`` when sigma = 0.
        surrogate_alpha: override the surrogate's sharpness.
        noise_at_eval: keep drawing noise in eval mode (the paper's models are stochastic).
        generator: torch.Generator for the noise, so a seed reproduces a run.
        detach_reset, step_mode, decay_input: as in spikingjelly.

    Example:
        >>> import torch
        >>> node = NoisyLIFNode(noise_scale=0.2, step_mode="m")
        >>> node(torch.rand(4, 8)).shape   # [T, N]
        torch.Size([4, 8])
    """

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0, v_reset: float | None = 0.0,
                 noise_scale: float = 0.0, surrogate: Surrogate | str | None = None,
                 surrogate_alpha: float | None = None, noise_at_eval: bool = True,
                 generator: torch.Generator | None = None, detach_reset: bool = False,
                 step_mode: str = "m", decay_input: bool = True):
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 1:
            raise ValueError(f"tau: expected a number > 1, got {tau!r}")
        if isinstance(noise_scale, bool) or not isinstance(noise_scale, (int, float)) \
                or not noise_scale >= 0:
            raise ValueError(f"noise_scale: expected sigma >= 0, got {noise_scale!r}")
        if not v_threshold > 0:
            raise ValueError(f"v_threshold: expected > 0, got {v_threshold!r}")
        kind, alpha = surrogates.resolve(surrogate, float(noise_scale), surrogate_alpha)
        super().__init__(tau=float(tau), decay_input=decay_input, v_threshold=float(v_threshold),
                         v_reset=None if v_reset is None else float(v_reset),
                         detach_reset=detach_reset, step_mode=step_mode)
        self.noise_scale = float(noise_scale)
        self.noise_at_eval = noise_at_eval
        self.generator = generator
        self.params = LIFParams(tau=float(tau), v_threshold=float(v_threshold),
                                v_reset=self.v_reset, decay_input=decay_input,
                                detach_reset=detach_reset, surrogate=kind, alpha=alpha)
        # Set by tgo.neurons.recording / tgo.neurons.noise; None means "not in use".
        self.recorder: list[torch.Tensor] | None = None
        self.noise_override: bool | None = None

    @property
    def noise_active(self) -> bool:
        """Whether the next forward pass draws noise."""
        if self.noise_scale == 0:
            return False
        if self.noise_override is not None:
            return self.noise_override
        return self.training or self.noise_at_eval

    def set_surrogate(self, surrogate: Surrogate | str, alpha: float | None = None) -> None:
        """Swap the surrogate gradient (e.g. an attacker's choice, unlike training's)."""
        kind, alpha = surrogates.resolve(surrogate, self.noise_scale, alpha)
        self.params = LIFParams(**{**self.params.__dict__, "surrogate": kind, "alpha": alpha})

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", noise_scale={self.noise_scale}, "
                f"surrogate={self.params.surrogate.value}(alpha={self.params.alpha:.4g}), "
                f"noise_at_eval={self.noise_at_eval}")

    def _draw_thresholds(self, like: torch.Tensor) -> torch.Tensor | None:
        """Per-element firing thresholds V_th - xi ~ N(V_th, sigma^2), or None (no noise)."""
        if not self.noise_active:
            return None
        out = torch.empty(like.shape, device=like.device, dtype=torch.float32)
        return out.normal_(self.params.v_threshold, self.noise_scale, generator=self.generator)

    def _run(self, x_seq: torch.Tensor) -> torch.Tensor:
        (v,) = self.materialize_states((x_seq,), (self.v,), "m")
        spikes, h_seq, v_last = noisy_lif_multi_step(x_seq, v, None, self.params,
                                                     thresholds=self._draw_thresholds(x_seq))
        self.v = v_last
        if self.recorder is not None:
            self.recorder.append(h_seq)
        return spikes

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self._run(x_seq)

    def single_step_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self._run(x.unsqueeze(0))[0]

    # A torch.Generator does not pickle: keep its state instead, so models deep-copy,
    # pickle and travel to Ray workers.
    def __getstate__(self):
        state = self.__dict__.copy()
        gen = state.pop("generator", None)
        state["_generator_state"] = None if gen is None else (str(gen.device), gen.get_state())
        return state

    def __setstate__(self, state):
        saved = state.pop("_generator_state", None)
        self.__dict__.update(state)
        self.generator = None
        if saved is not None:
            device, rng_state = saved
            self.generator = torch.Generator(device=device)
            self.generator.set_state(rng_state)
