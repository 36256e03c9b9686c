"""A causal Transformer over the pixel sequence, GPT-style (Radford et al. 2018; chapter "Autoregressive models").

The network follows nanoGPT's model file: token and learned position
embeddings, pre-norm blocks of causal multi-head self-attention and an MLP
(Vaswani et al. 2017), a final LayerNorm and a linear head.
"""

import torch
from torch import nn
from torch.nn.functional import scaled_dot_product_attention

from gmlib.models.autoregressive.base import AutoregressiveModel, draw_levels, evaluating
from gmlib.validation import require_fraction, require_int

Cache = dict[str, torch.Tensor]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions <= t: (B, T, d) -> (B, T, d).

    With a ``cache`` (a dict per layer), the keys and values of this call are
    appended to those of earlier calls and the queries attend to all of them:
    the T new positions come after the cached ones (the KV cache).
    """

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.projection = nn.Linear(d_model, d_model)
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (part.view(B, T, self.heads, C // self.heads).transpose(1, 2) for part in self.qkv(x).split(C, 2))
        if cache is not None:  # (B, heads, past + T, C // heads)
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        past = k.shape[2] - T
        if past == 0:  # the whole sequence at once: the fused causal kernel
            y = scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, C // heads)
        else:
            allowed = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)  # (T, past + T)
            y = scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.residual_dropout(self.projection(y))


class Block(nn.Module):
    """A pre-norm Transformer block: x + attention(LN(x)), then + MLP(LN(x)), (B, T, d) -> (B, T, d)."""

    def __init__(self, d_model: int, heads: int, dropout: float, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Linear(mlp_ratio * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), cache)
        return x + self.mlp(self.norm2(x))


class CausalTransformer(AutoregressiveModel):
    """A GPT over the D pixels in raster order: x (batch, D) -> logits (batch, D, L).

    Each level is a token (an embedding of L levels plus a start token); the
    input sequence [start, x_0, ..., x_{D-2}] plus learned position embeddings
    passes ``layers`` pre-norm blocks of causal self-attention with ``heads``
    heads and an MLP of width ``mlp_ratio`` d_model, a final LayerNorm and the linear ``head`` to L
    logits, so output i reads the start token and x_<i only and predicts x_i
    (the shift by one of eq-ar-chain-rule). Weights start as nanoGPT's,
    normal with standard deviation 0.02.

    ``sample(n, cache=True)`` keeps the keys and values of past positions (a KV
    cache), so each new pixel costs one position's computation; ``cache=False``
    recomputes the whole prefix at every step. Both draw the same samples from
    the same generator.
    """

    def __init__(
        self,
        *,
        dim: int,
        levels: int,
        d_model: int = 128,
        heads: int = 4,
        layers: int = 3,
        mlp_ratio: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dim=dim, levels=levels)
        require_int("d_model", d_model, low=1)
        require_int("mlp_ratio", mlp_ratio, low=1)
        require_int("heads", heads, low=1)
        require_int("layers", layers, low=1)
        if d_model % heads:
            raise ValueError(f"heads must divide d_model, got heads={heads} and d_model={d_model}")
        require_fraction("dropout", dropout)
        self.d_model, self.heads, self.layers = d_model, heads, layers
        self.token = nn.Embedding(levels + 1, d_model)  # rows 0..L-1 the levels, row L the start token
        self.position = nn.Embedding(dim, d_model)
        self.embedding_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, heads, dropout, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, levels)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def logits_from_onehot(self, onehot: torch.Tensor) -> torch.Tensor:
        """One-hot code (batch, D, L) -> logits (batch, D, L)."""
        levels = onehot[:, :-1] @ self.token.weight[: self.levels]  # (B, D - 1, d): embeddings of x_0..x_{D-2}
        start = self.token.weight[self.levels].expand(onehot.shape[0], 1, self.d_model)  # (B, 1, d)
        return self._run(torch.cat([start, levels], dim=1))

    def _run(self, tokens: torch.Tensor, caches: list[Cache] | None = None) -> torch.Tensor:
        """Token embeddings (B, T, d) at positions past..past+T-1 -> logits (B, T, L); past = cached positions."""
        past = caches[0]["k"].shape[2] if caches and "k" in caches[0] else 0
        h = self.embedding_dropout(tokens + self.position.weight[past : past + tokens.shape[1]])  # (B, T, d)
        for k, block in enumerate(self.blocks):
            h = block(h, None if caches is None else caches[k])
        return self.head(self.norm(h))  # (B, T, L)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, cache: bool = True) -> torch.Tensor:
        """Draw n images, pixel by pixel: -> (n, D) int64 (eval mode; the module's mode is restored).

        With ``cache`` each step feeds one token and reuses the keys and values
        of the earlier ones; without, each step feeds the whole prefix
        [start, x_0, ..., x_{i-1}]. One uniform draw per pixel from
        ``generator`` (``draw_levels``), the same in both.
        """
        require_int("n", n, low=1)
        if not isinstance(cache, bool):
            raise ValueError(f"cache must be a bool, got {cache!r}")
        with evaluating(self):
            x = torch.zeros(n, self.dim, dtype=torch.long, device=self.order.device)
            sequence = self.token.weight[self.levels].expand(n, 1, self.d_model)  # (n, 1, d): the start token
            caches: list[Cache] | None = [{} for _ in self.blocks] if cache else None
            for i in range(self.dim):
                logits = self._run(sequence[:, -1:] if cache else sequence, caches)[:, -1]  # (n, L)
                x[:, i] = draw_levels(logits, generator)
                sequence = torch.cat([sequence, self.token(x[:, i : i + 1])], dim=1)  # (n, i + 2, d)
        return x
