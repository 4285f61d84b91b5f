import pytest
import torch

from izf.flow import Coupling, Flow
from izf.model import IZF


@pytest.mark.parametrize("mixing", ["permute", "lu"])
def test_inverse_round_trip_float64(mixing):
    torch.manual_seed(0)
    flow = Flow(7, depth=4, hidden=16, mixing=mixing).double()
    for p in flow.parameters():  # leave the identity start, so the check means something
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(32, 7, dtype=torch.float64)
    z, _ = flow(x)
    assert not torch.allclose(z, x)
    assert torch.allclose(flow.inverse(z), x, atol=1e-10)


@pytest.mark.parametrize("mixing", ["permute", "lu"])
def test_log_det_matches_autograd_jacobian(mixing):
    torch.manual_seed(1)
    flow = Flow(5, depth=3, hidden=8, clamp=1.5, mixing=mixing).double()
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(4, 5, dtype=torch.float64)
    _, ladj = flow(x)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        assert torch.allclose(ladj[i], torch.linalg.slogdet(jac)[1], atol=1e-9)


def test_soft_clamp_bounds_each_coupling_log_scale():
    coupling = Coupling(4, hidden=8, clamp=0.5).double()
    for p in coupling.parameters():
        torch.nn.init.normal_(p, std=5.0)
    _, ladj = coupling(torch.randn(64, 4, dtype=torch.float64) * 10)
    assert ladj.abs().max() <= 0.5 * 4


def test_every_parameter_gets_a_gradient():
    model = IZF(Flow(6, depth=2, hidden=8), torch.randn(3, 2))
    for p in model.parameters():  # zero-initialised output layers would block the first layers' gradient
        torch.nn.init.normal_(p, std=0.3)
    semantic, free, ladj = model.encode(torch.randn(10, 6))
    (semantic.sum() + free.square().sum() - ladj.sum() + model.generate(torch.tensor([0, 1])).sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_generate_puts_class_code_in_semantic_factor():
    torch.manual_seed(0)
    model = IZF(Flow(6, depth=2, hidden=8), torch.randn(3, 2)).double()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    labels = torch.tensor([0, 2, 1])
    semantic, _, _ = model.encode(model.generate(labels, temperature=0.7))
    assert torch.allclose(semantic, model.class_codes[labels], atol=1e-8)


def test_bfloat16_subnets_keep_the_flow_invertible_and_its_log_det_right():
    torch.manual_seed(2)
    flow = Flow(6, depth=3, hidden=16, subnet_precision="bfloat16")
    for p in flow.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(64, 6)
    z, ladj = flow(x)
    assert z.dtype == ladj.dtype == torch.float32
    assert (flow.inverse(z) - x).abs().max() < 5e-2  # bfloat16 rounds the subnets' inputs
    reference = Flow(6, depth=3, hidden=16)
    reference.load_state_dict(flow.state_dict())
    assert 1e-4 < (reference(x)[0] - z).abs().max() < 0.1  # it really ran in bfloat16, and close
    for i in range(3):  # autograd's Jacobian carries bfloat16 rounding from the subnets' backward
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        assert torch.allclose(ladj[i], torch.linalg.slogdet(jac)[1], atol=1e-2)
