"""InfoNCE against a plain float64 reference (facts section 3), and every criterion of CEBRA 0.6.1
(cosine / euclidean, constant / learnable temperature) against CEBRA's own code: value and gradient."""

from __future__ import annotations

import math

import pytest
import torch

from cebra_core.engine.loss import Criterion, infonce


def unit(n: int, d: int = 3, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (x / x.norm(dim=1, keepdim=True)).to(dtype)


def reference_infonce(ref, pos, neg, temperature):
    """L = mean(-s+) + mean(logsumexp S): the positive is not in the denominator. Returns (total, pos, neg)."""
    ref, pos, neg = ref.double(), pos.double(), neg.double()
    s_pos = (ref * pos).sum(1) / temperature
    s_neg = ref @ neg.T / temperature
    align = (-s_pos).mean()
    row_max = s_neg.max(dim=1, keepdim=True).values
    uniform = (torch.log(torch.exp(s_neg - row_max).sum(1)) + row_max[:, 0]).mean()
    return align + uniform, align, uniform


def triplet(n=256, seed=0, dtype=torch.float32, correlated=True):
    ref = unit(n, seed=seed, dtype=dtype)
    pos = unit(n, seed=seed + 1, dtype=dtype)
    if correlated:  # positives near their references, like a trained model
        pos = ref + 0.3 * pos
        pos = pos / pos.norm(dim=1, keepdim=True)
    neg = unit(n, seed=seed + 2, dtype=dtype)
    return ref, pos, neg


@pytest.mark.parametrize("temperature", [1.0, 0.3, 2.5])
def test_values_match_float64_reference(temperature):
    ref, pos, neg = triplet(seed=3)
    out = infonce(ref, pos, neg, 1 / temperature)
    total, align, uniform = reference_infonce(ref, pos, neg, temperature)
    assert abs(out.total.item() - total.item()) < 1e-6 * max(1.0, abs(total.item()))
    assert abs(out.pos.item() - align.item()) < 1e-6 * max(1.0, abs(align.item()))
    assert abs(out.neg.item() - uniform.item()) < 1e-6 * max(1.0, abs(uniform.item()))
    assert abs(out.pos.item() + out.neg.item() - out.total.item()) < 1e-6


def test_pos_and_neg_as_logged():
    ref, pos, neg = triplet(seed=4)
    out = infonce(ref, pos, neg, 1 / 1.0)
    cos = (ref.double() * pos.double()).sum(1)
    assert abs(out.pos.item() - (-cos.mean().item())) < 1e-6  # pos = -mean cosine / tau, in [-1/tau, 1/tau]
    assert -1.0 <= out.pos.item() <= 1.0
    lse = torch.logsumexp(ref.double() @ neg.double().T, dim=1).mean()
    assert abs(out.neg.item() - lse.item()) < 1e-6
    # with the positive in the denominator the value would differ clearly
    s_neg = ref.double() @ neg.double().T
    with_pos = torch.logsumexp(torch.cat([cos[:, None], s_neg], 1), 1).mean() - cos.mean()
    assert abs(out.total.item() - with_pos.item()) > 1e-3


def test_identical_positive_and_reference():
    ref, _, neg = triplet(seed=5)
    out = infonce(ref, ref, neg, 1 / 0.5)
    assert abs(out.pos.item() - (-2.0)) < 1e-6  # -1/tau


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_gradient_equals_autograd_of_reference(temperature):
    ref, pos, neg = (t.requires_grad_() for t in triplet(n=128, seed=6))
    grads = torch.autograd.grad(infonce(ref, pos, neg, 1 / temperature).total, (ref, pos, neg))
    ref64, pos64, neg64 = (t.detach().double().requires_grad_() for t in (ref, pos, neg))
    want = torch.autograd.grad(reference_infonce(ref64, pos64, neg64, temperature)[0], (ref64, pos64, neg64))
    for g, w in zip(grads, want):
        assert (g.double() - w).abs().max() < 1e-6 * max(1.0, w.abs().max().item())
        assert w.abs().max() > 1e-4


def test_temperature_scaling():
    ref, pos, neg = triplet(seed=7)
    one = infonce(ref, pos, neg, 1 / 1.0)
    tau = 0.25
    scaled = infonce(ref, pos, neg, 1 / tau)
    assert abs(scaled.pos.item() - one.pos.item() / tau) < 1e-5
    assert abs(scaled.neg.item() - one.neg.item()) > 0.5  # neg is not a linear function of 1/tau
    lse = torch.logsumexp(ref.double() @ neg.double().T / tau, 1).mean()
    assert abs(scaled.neg.item() - lse.item()) < 1e-5


def test_no_overflow_with_huge_similarities():
    ref, pos, neg = triplet(n=128, seed=8)
    tau = 1e-3  # similarities up to 1000: exp would overflow float32 without the max shift
    out = infonce(ref, pos, neg, 1 / tau)
    total, align, uniform = reference_infonce(ref, pos, neg, tau)
    for got, want in ((out.total, total), (out.pos, align), (out.neg, uniform)):
        assert torch.isfinite(got)
        assert abs(got.item() - want.item()) < 1e-6 * abs(want.item()) + 1e-3
    # the row-max shift cancels: the gradient equals float64 autograd of the unshifted loss
    ref_g = ref.clone().requires_grad_()
    infonce(ref_g, pos, neg, 1 / tau).total.backward()
    ref64 = ref.double().requires_grad_()
    reference_infonce(ref64, pos, neg, tau)[0].backward()
    assert torch.isfinite(ref_g.grad).all()
    assert (ref_g.grad.double() - ref64.grad).abs().max() < 1e-4 * ref64.grad.abs().max()


@pytest.mark.parametrize("n", [512, 2048])
def test_uniform_embeddings_on_the_sphere(n):
    ref, pos, neg = unit(n, seed=10), unit(n, seed=11), unit(n, seed=12)
    out = infonce(ref, pos, neg, 1 / 1.0)
    assert abs(out.neg.item() - (math.log(n) + math.log(math.sinh(1.0)))) < 0.05
    assert abs(out.pos.item()) < 0.1  # random positives: mean cosine ~ 0


def test_scalar_float32_outputs():
    ref, pos, neg = triplet(seed=13)
    out = infonce(ref, pos, neg, 1 / 1.0)
    for value in out:
        assert value.dtype == torch.float32 and value.dim() == 0


CRITERIA = [("cosine", "constant", 1.0), ("cosine", "constant", 0.3), ("euclidean", "constant", 1.0),
            ("euclidean", "constant", 2.0), ("cosine", "auto", 0.5), ("cosine", "auto", 0.05),
            ("euclidean", "auto", 1.5)]


@pytest.mark.reference
@pytest.mark.parametrize("distance,mode,temperature", CRITERIA)
def test_every_criterion_equals_cebras(distance, mode, temperature):
    """The loss value, its pos and neg terms, the gradient of every input (and of the learnable
    temperature) and the logged temperature equal CEBRA 0.6.1's criterion on the same batch, to
    float32 precision. 0.05 with min_temperature 0.1 is clamped (no gradient to the parameter)."""
    criterions = pytest.importorskip("cebra.models.criterions", reason="CEBRA 0.6.1 is installed with the test extras")
    classes = {("cosine", "constant"): criterions.FixedCosineInfoNCE, ("euclidean", "constant"): criterions.FixedEuclideanInfoNCE,
               ("cosine", "auto"): criterions.LearnableCosineInfoNCE, ("euclidean", "auto"): criterions.LearnableEuclideanInfoNCE}
    kwargs = {"temperature": temperature} | ({"min_temperature": 0.1} if mode == "auto" else {})
    reference = classes[distance, mode](**kwargs)
    ours = Criterion(distance, temperature, mode, 0.1)
    g = torch.Generator().manual_seed(3)
    batch = [torch.randn(256, 5, generator=g) for _ in range(3)]
    if distance == "cosine":
        batch = [x / x.norm(dim=1, keepdim=True) for x in batch]
    theirs_in = [x.clone().requires_grad_() for x in batch]
    ours_in = [x.clone().requires_grad_() for x in batch]
    total, pos, neg = reference(*theirs_in)
    out = ours(*ours_in)
    for a, b in ((total, out.total), (pos, out.pos), (neg, out.neg)):
        assert abs(a.item() - b.item()) <= 2e-6 * max(1.0, abs(a.item()))
    total.backward()
    out.total.backward()
    for a, b in zip(theirs_in, ours_in):
        assert (a.grad - b.grad).abs().max() <= 1e-6 * max(1.0, a.grad.abs().max().item())
    if mode == "auto":
        theirs_grad = reference.log_inverse_temperature.grad
        ours_grad = ours.log_inverse_temperature.grad
        assert (theirs_grad is None or theirs_grad == 0) == (ours_grad is None or ours_grad == 0)
        if theirs_grad is not None and theirs_grad != 0:
            assert abs(theirs_grad.item() - ours_grad.item()) <= 1e-5 * abs(theirs_grad.item())
        assert [n for n, _ in reference.named_parameters()] == [n for n, _ in ours.named_parameters()]
    assert ours.temperature == pytest.approx(reference.temperature, rel=1e-6)
