"""Energy-based models: p(x) = exp(-E(x)) / Z (chapter "Energy-based models").

The package's modules, one job each: ``ebm`` (``EnergyModel``: a network
energy on a box of R^d, trained by contrastive divergence with short-run
Langevin chains that persist between steps, and its partition function by
quadrature in 2D), ``rbm`` (``RBM``: binary visible and hidden units, the
free energy, Gibbs sampling, CD-k, persistent CD or the exact gradient, and
the exact partition function by summing over the hidden states) and ``score``
(``ScoreModel``: a score network trained by denoising score matching, which
never meets Z); every name is re-exported here.
"""

from gmlib.models.energy.ebm import EnergyModel
from gmlib.models.energy.rbm import RBM, RBM_ESTIMATORS, binarize
from gmlib.models.energy.score import ScoreModel

__all__ = ["RBM", "RBM_ESTIMATORS", "EnergyModel", "ScoreModel", "binarize"]
