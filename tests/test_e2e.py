import torch

from qlinear.e2e import _FreeLinear, remove_linears


def test_linear_free_floor_model_keeps_the_rest_and_allocates_once(tiny_llama):
    model = tiny_llama(layers=2)
    assert remove_linears(model) == 2 * 7  # q, k, v, o, gate, up, down per layer
    assert not any(isinstance(m, torch.nn.Linear) for m in model.model.modules())
    assert isinstance(model.lm_head, torch.nn.Linear)  # the LM head is not one qlinear quantizes
    ids = torch.randint(0, 100, (3, 5))
    with torch.no_grad():
        first = model(ids, use_cache=False).logits
        down = model.model.layers[0].mlp.down_proj
        kept = dict(down._outputs)
        second = model(ids, use_cache=False).logits
    assert first.shape == (3, 5, 100) and torch.isfinite(first).all() and torch.equal(first, second)
    assert isinstance(down, _FreeLinear) and down._outputs.keys() == kept.keys()
    assert all(down._outputs[k] is kept[k] for k in kept)  # reused: no allocation (no kernel) per call
    assert kept[(3, 5, 64)].abs().sum() == 0
