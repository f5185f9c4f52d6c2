"""token_kd_loss (objectives.md section 14): hand-derived values, masks, chunks, gradients."""

import math

import pytest
import torch

from kdtemp.objectives import DIVERGENCES, OBJECTIVES, chunked_rows, create_objective, objective_rows, token_kd_loss
from kdtemp.objectives.dkd import dkd_loss

from helpers.tolerance import float32_rel

LN = math.log


def _two_token_pair(dtype=torch.float32):
    """Teacher p = (1/4, 3/4), student q = (1/2, 1/2) at T = 1, on one token."""
    teacher = torch.tensor([[0.0, LN(3.0)]], dtype=dtype)
    student = torch.tensor([[0.0, 0.0]], dtype=dtype)
    return student, teacher, torch.tensor([1])


def test_hand_derived_values_at_t1():
    s, t, y = _two_token_pair()
    forward = 0.25 * LN(0.25 / 0.5) + 0.75 * LN(0.75 / 0.5)
    reverse = 0.5 * LN(0.5 / 0.25) + 0.5 * LN(0.5 / 0.75)
    m = (0.5 * 0.25 + 0.5 * 0.5, 0.5 * 0.75 + 0.5 * 0.5)  # beta p + (1 - beta) q
    jsd = 0.5 * (0.25 * LN(0.25 / m[0]) + 0.75 * LN(0.75 / m[1])) + 0.5 * (0.5 * LN(0.5 / m[0]) + 0.5 * LN(0.5 / m[1]))
    a = 0.1
    skew_m = (a * 0.25 + (1 - a) * 0.5, a * 0.75 + (1 - a) * 0.5)
    skew_f = 0.25 * LN(0.25 / skew_m[0]) + 0.75 * LN(0.75 / skew_m[1])
    skew_rm = ((1 - a) * 0.25 + a * 0.5, (1 - a) * 0.75 + a * 0.5)
    skew_r = 0.5 * LN(0.5 / skew_rm[0]) + 0.5 * LN(0.5 / skew_rm[1])
    expected = {"forward_kl": forward, "reverse_kl": reverse, "jsd": jsd, "skew_forward_kl": skew_f,
                "skew_reverse_kl": skew_r}
    for divergence, value in expected.items():
        # float64: the formula itself, to float64 rounding
        got = token_kd_loss(*_two_token_pair(torch.float64), 1.0, divergence=divergence)
        assert got.item() == pytest.approx(value, rel=1e-12), divergence
        # float32: about 8 rounded log/exp/products per row, and the terms cancel (the sum of their
        # magnitudes is at most 7.3 times the value, JSD's): a bound for any CPU (an Intel Xeon
        # was 1.07e-6 off JSD's value, past the 1e-6 this test had)
        got = token_kd_loss(s, t, y, 1.0, divergence=divergence)
        assert got.item() == pytest.approx(value, rel=float32_rel(8, cancellation=8)), divergence


def test_t_squared_and_the_temperature():
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    y = torch.zeros(5, dtype=torch.long)
    plain = token_kd_loss(s, t, y, 3.0, t_squared=False)
    assert token_kd_loss(s, t, y, 3.0).item() == pytest.approx(9.0 * plain.item(), rel=float32_rel(2))
    p, q = torch.softmax(t / 3, -1), torch.log_softmax(s / 3, -1)
    assert plain.item() == pytest.approx((p * (p.log() - q)).sum(-1).mean().item(), rel=1e-5)


def test_jsd_limits_and_skew_zero_are_the_kls():
    s, t = torch.randn(6, 11), torch.randn(6, 11)
    y = torch.zeros(6, dtype=torch.long)
    forward = token_kd_loss(s, t, y, 2.0, "forward_kl")
    reverse = token_kd_loss(s, t, y, 2.0, "reverse_kl")
    assert torch.equal(token_kd_loss(s, t, y, 2.0, "jsd", beta=0.0), forward)
    assert torch.equal(token_kd_loss(s, t, y, 2.0, "jsd", beta=1.0), reverse)
    assert torch.allclose(token_kd_loss(s, t, y, 2.0, "skew_forward_kl", skew=0.0), forward)
    assert torch.allclose(token_kd_loss(s, t, y, 2.0, "skew_reverse_kl", skew=0.0), reverse)
    assert token_kd_loss(s, t, y, 2.0, "jsd", beta=0.5) < forward  # the JSD is bounded by the KLs' mix


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_zero_at_equality_and_finite_at_extremes(divergence):
    z = torch.randn(4, 9) * 3
    y = torch.zeros(4, dtype=torch.long)
    assert token_kd_loss(z, z.clone(), y, 2.0, divergence).abs().item() < 1e-6
    big = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], requires_grad=True)
    other = torch.tensor([[-1e4, 1e4, 0.0], [1e4, -1e4, 0.0]])
    for temperature in (0.1, 1.0, 100.0):
        value = token_kd_loss(big, other, torch.zeros(2, dtype=torch.long), temperature, divergence)
        (grad,) = torch.autograd.grad(value, big)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), (divergence, temperature)


def test_masked_positions_have_no_value_and_exactly_zero_gradient():
    torch.manual_seed(0)
    s = torch.randn(2, 5, 13, requires_grad=True)
    t = torch.randn(2, 5, 13)
    labels = torch.tensor([[-100, -100, 3, 4, -100], [-100, 1, 2, -100, -100]])
    for divergence in DIVERGENCES:
        value = token_kd_loss(s, t, labels, 2.0, divergence)
        (grad,) = torch.autograd.grad(value, s)
        masked = labels == -100
        assert torch.count_nonzero(grad[masked]) == 0
        assert (grad[~masked].abs().sum(-1) > 0).all()
        valid = token_kd_loss(s[~masked], t[~masked], labels[~masked], 2.0, divergence)
        # the same rows summed over 10 positions or over the 4 valid ones (13 classes each)
        assert torch.allclose(value, valid, rtol=float32_rel(2 * 13 + 10), atol=0)
        # changing what the masked positions hold changes nothing
        t2 = t.clone()
        t2[masked] = torch.randn_like(t2[masked]) * 10
        assert torch.equal(token_kd_loss(s, t2, labels, 2.0, divergence), value)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_chunked_equals_unchunked(divergence):
    torch.manual_seed(1)
    s = torch.randn(3, 17, 50, requires_grad=True)
    t = torch.randn(3, 17, 50)
    labels = torch.randint(0, 50, (3, 17))
    labels[:, :4] = -100
    whole = token_kd_loss(s, t, labels, 3.0, divergence)
    (g_whole,) = torch.autograd.grad(whole, s)
    for chunk in (1, 7, 16, 1000):
        part = token_kd_loss(s, t, labels, 3.0, divergence, chunk_tokens=chunk)
        (g_part,) = torch.autograd.grad(part, s)
        # sums over 39 rows of 50 classes in another order; JSD's and the skews' terms cancel a little
        assert torch.allclose(part, whole, rtol=float32_rel(50 + 39, cancellation=4), atol=0)
        assert torch.allclose(g_part, g_whole, rtol=float32_rel(50), atol=float32_rel(50) * g_whole.abs().max().item())


def test_plain_full_vocabulary_implementation_agrees():
    """The chunked function against a direct [N, V] computation with autograd."""
    torch.manual_seed(2)
    s = torch.randn(40, 30, requires_grad=True)
    t = torch.randn(40, 30)
    y = torch.randint(0, 30, (40,))
    temperature = 2.5
    p, log_p = torch.softmax(t / temperature, -1), torch.log_softmax(t / temperature, -1)
    log_q = torch.log_softmax(s / temperature, -1)
    plain = temperature ** 2 * (p * (log_p - log_q)).sum(-1).mean()
    chunked = token_kd_loss(s, t, y, temperature, chunk_tokens=8)
    # 40 rows of 30 classes: log-softmax over 30 terms, then a sum over 40 rows
    assert torch.allclose(plain, chunked, rtol=float32_rel(30 + 40), atol=0)
    g_plain, g_chunked = torch.autograd.grad(plain, s)[0], torch.autograd.grad(chunked, s)[0]
    assert torch.allclose(g_plain, g_chunked, rtol=float32_rel(30), atol=float32_rel(30) * g_plain.abs().max().item())


def test_num_items_divides_the_sum_and_no_token_gives_zero():
    s, t = torch.randn(6, 8, requires_grad=True), torch.randn(6, 8)
    labels = torch.tensor([1, 2, -100, 3, -100, 4])
    mean = token_kd_loss(s, t, labels, 1.0)
    assert torch.allclose(token_kd_loss(s, t, labels, 1.0, num_items=8), mean * 4 / 8)
    none = token_kd_loss(s, t, torch.full((6,), -100), 1.0)
    (grad,) = torch.autograd.grad(none, s)
    assert none.item() == 0.0 and torch.count_nonzero(grad) == 0


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_float64_gradcheck_student_and_temperature(divergence):
    torch.manual_seed(3)
    s = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, 6, dtype=torch.float64)
    labels = torch.tensor([0, -100, 2, 3, -100])
    temperature = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)

    def loss(student, T):
        return token_kd_loss(student, t, labels, T, divergence, beta=0.3, skew=0.2, chunk_tokens=2).double()

    assert torch.autograd.gradcheck(loss, (s, temperature))


def test_any_row_wise_objective_chunked_on_token_rows():
    torch.manual_seed(4)
    s, t = torch.randn(20, 12, requires_grad=True), torch.randn(20, 12)
    y = torch.randint(0, 12, (20,))
    direct = dkd_loss(s, t, y, 4.0)
    chunked = chunked_rows(objective_rows(lambda a, b, c, T: dkd_loss(a, b, c, T)), s, t, y, 4.0, chunk_tokens=6)
    # DKD's two KLs over 12 classes, summed over 20 rows in another order
    assert torch.allclose(direct, chunked, rtol=float32_rel(2 * 12 + 20, cancellation=2), atol=0)
    g_direct, g_chunked = torch.autograd.grad(direct, s)[0], torch.autograd.grad(chunked, s)[0]
    assert torch.allclose(g_direct, g_chunked, rtol=float32_rel(2 * 12), atol=float32_rel(2 * 12) * g_direct.abs().max().item())
    kd = create_objective("kd")
    assert torch.allclose(kd(s, t, y, 4.0), token_kd_loss(s, t, y, 4.0), rtol=float32_rel(12 + 20), atol=0)


def test_registered_divergences_equal_the_token_loss():
    s, t = torch.randn(9, 10), torch.randn(9, 10)
    y = torch.zeros(9, dtype=torch.long)
    pairs = {"reverse_kl": ("reverse_kl", {}), "jsd": ("jsd", {"beta": 0.3}), "skew_kl": ("skew_forward_kl", {"skew": 0.2}),
             "skew_reverse_kl": ("skew_reverse_kl", {"skew": 0.2})}
    for name, (divergence, params) in pairs.items():
        got = create_objective(name, **params)(s, t, y, 2.0)
        want = token_kd_loss(s, t, y, 2.0, divergence, beta=params.get("beta", 0.5), skew=params.get("skew", 0.1))
        assert torch.allclose(got, want, rtol=float32_rel(10 + 9, cancellation=4), atol=0), name


def test_batch_coupled_objectives_say_why_they_take_no_vocabulary():
    coupled = {name for name, spec in OBJECTIVES.items() if spec.no_token_form}
    assert {"dist", "mlkd", "energy_kd", "ls_global", "shuffled_tail"} <= coupled
    assert not {"kd", "dkd", "reverse_kl", "jsd", "skew_kl", "ls_kd", "normkd"} & coupled


def test_bad_arguments_are_refused():
    s, t, y = _two_token_pair()
    with pytest.raises(ValueError, match="divergence"):
        token_kd_loss(s, t, y, divergence="tvd")
    with pytest.raises(ValueError, match="beta"):
        token_kd_loss(s, t, y, divergence="jsd", beta=1.5)
    with pytest.raises(ValueError, match="align"):
        token_kd_loss(s, t, torch.tensor([1, 2]))


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl"])
def test_float64_gradcheck_of_the_closed_form_gradients(divergence):
    """At a fixed T the forward and reverse KL take their gradient in closed form (not by autograd)."""
    torch.manual_seed(5)
    s = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    t = torch.randn(6, 7, dtype=torch.float64)
    labels = torch.tensor([0, -100, 2, 3, 1, -100])
    for temperature in (0.5, 3.0):
        assert torch.autograd.gradcheck(
            lambda student: token_kd_loss(student, t, labels, temperature, divergence, chunk_tokens=3), (s,))
        assert torch.autograd.gradcheck(
            lambda student: token_kd_loss(student, t, labels, temperature, divergence, t_squared=False), (s,))
