"""Semi-siamese training (Du et al., ECCV 2020) for shallow data: people with one or two images.

A learned class prototype (ArcFace's row of `weight`) of a person seen in one image only learns that
image. Semi-siamese training replaces the classifier by prototypes taken from the batch itself:
each image (the probe) is pulled to another image of its person, and pushed from the other people
in the batch and from a queue of earlier batches' people. With `min_images: pad` a person with one
image gets two augmented views of it, so everyone in the training set contributes.

For probe i of person y in a batch (embeddings L2-normalised, the prototype side without gradient):
  positive    p_i = normalise(sum of the other images of y in the batch)
  negatives   n_c = normalise(sum of the images of c), each other person c in the batch, and the
              queue's prototypes of earlier batches (those of person y left out)
  loss_i = cross-entropy of s * [f(cos(e_i, p_i)), cos(e_i, n_c)...] with the positive as the
           target, f ArcFace's margin: cos(theta + m)
The paper's gallery network is a moving average of the probe network (momentum 0.999 in its
code), which keeps the queued prototypes consistent. Here the gallery is the probe network itself
with its gradient stopped: no second network and no second forward pass, MoCo's momentum 0. That
setting fails MoCo's instance discrimination, and used alone here, over everyone, it trails
ArcFace; beside ArcFace on people with two or more images it lowers LFW View 1's EER
(docs/results.md). Other departures from the official code: the queue keeps each prototype's
person and leaves a probe's own person out (the paper's sampler keeps queued people out of the
next batch instead); prototypes are the normalised sum of a person's images rather than one
gallery view, so any K >= 2 works; the defaults are s=32, m=0.3 and 4,096 slots (the paper's:
s=30 and 16,384). After each training step the batch's prototypes enter the first-in first-out
queue. Under several processes each keeps its own queue. Needs K >= 2 images per identity in a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facerec.errors import FacerecError

from .base import FaceLoss
from .margin import AngularMargin
from .registry import register_loss


class SemiSiamese(FaceLoss):
    min_per_class = 2
    num_classes = None

    def __init__(self, embedding_dim: int, scale: float = 32.0, margin: float = 0.3, queue_size: int = 4096):
        super().__init__()
        if scale <= 0:
            raise FacerecError(f"semi_siamese scale must be > 0, got {scale}")
        if queue_size < 0:
            raise FacerecError(f"semi_siamese queue_size must be >= 0 (0: the batch's people only), got {queue_size}")
        self.margin_fn = AngularMargin(margin)
        self.scale, self.margin, self.queue_size = float(scale), float(margin), int(queue_size)
        # Buffers, so a resumed run continues with the queue it had.
        self.register_buffer("queue", torch.empty(queue_size, embedding_dim))
        self.register_buffer("queue_labels", torch.empty(queue_size, dtype=torch.long))
        self.register_buffer("queue_next", torch.empty((), dtype=torch.long))
        self.start_new_run()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            e = F.normalize(embeddings.float(), dim=1)
            g = e.detach()
            people, person = torch.unique(labels, return_inverse=True)
            member = F.one_hot(person, len(people)).to(g.dtype)  # (N, people)
            counts = member.sum(0)
            if bool((counts < 2).any()):
                raise FacerecError(f"{self.name}: an identity has one image in this batch; semi_siamese needs "
                                   "per_class (K) >= 2 (with min_images: pad a person with one image gets two views)")
            sums = member.T @ g
            positive = F.normalize(sums[person] - g, dim=1)
            cos_pos = (e * positive).sum(1).clamp(-1.0, 1.0)
            cos_batch = (e @ F.normalize(sums, dim=1).T).masked_fill(member.bool(), float("-inf"))
            parts = [self.margin_fn(cos_pos)[:, None], cos_batch]
            if self.queue_size:
                usable = (self.queue_labels >= 0)[None, :] & (self.queue_labels[None, :] != labels[:, None])
                # a copy: backward needs the queue as it was, and the step refills it before then
                parts.append((e @ self.queue.clone().T).masked_fill(~usable, float("-inf")))
            logits = torch.cat(parts, dim=1) * self.scale
            loss = F.cross_entropy(logits, torch.zeros_like(labels))
            # top-1: the positive, before its margin, at least as near as every negative
            hit = cos_pos * self.scale >= logits[:, 1:].amax(1)
        self.record(acc=hit.float().mean() * 100, mean_pos_cos=cos_pos.mean())
        if self.training and self.queue_size:
            self._enqueue(F.normalize(sums, dim=1), people)
        return loss

    @torch.no_grad()
    def start_new_run(self) -> None:
        """Empty the queue, as a new loss has it: after `--initial-model` its labels would be the old
        run's class indices, which on another list name other people (a person's own prototypes
        would then count as negatives). It refills in queue_size / P steps."""
        self.queue.zero_()
        self.queue_labels.fill_(-1)
        self.queue_next.zero_()

    @torch.no_grad()
    def _enqueue(self, prototypes: torch.Tensor, people: torch.Tensor) -> None:
        prototypes, people = prototypes[-self.queue_size:], people[-self.queue_size:]
        # on the queue's device: no host round trip per step
        at = (self.queue_next + torch.arange(len(people), device=people.device)) % self.queue_size
        self.queue[at] = prototypes.to(self.queue.dtype)
        self.queue_labels[at] = people
        self.queue_next.copy_((self.queue_next + len(people)) % self.queue_size)


@register_loss(aliases=("sst",))
def semi_siamese(*, embedding_dim, num_classes, scale=32.0, margin=0.3, queue_size=4096):
    """No classifier: `num_classes` is accepted for the registry's one signature and unused."""
    return SemiSiamese(embedding_dim, scale, margin, queue_size)
